"""Frame sources: one small protocol, ``frames()`` yields (timestamp seconds, BGR uint8 frame)."""

from edge.camera.sources import FrameSource, OpenCVSource, ReplaySource, open_source

__all__ = ["FrameSource", "OpenCVSource", "ReplaySource", "open_source"]
