"""Frame sources (one small protocol) and the camera owner that keeps one open for the daemon's lifetime."""

from edge.camera.base import FrameSource, TimedFrame
from edge.camera.feed import CameraFeed, CameraStatus, LiveFeed, ReplayFeed
from edge.camera.sources import OpenCVSource, ReplaySource, open_source

__all__ = ["CameraFeed", "CameraStatus", "FrameSource", "LiveFeed", "OpenCVSource", "ReplayFeed", "ReplaySource",
           "TimedFrame", "open_source"]
