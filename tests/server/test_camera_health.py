"""A camera that stops delivering turns health NOT_SERVING within a few seconds and SERVING again when it
recovers, and no session hangs past its deadline meanwhile (issue 9).

The daemon owns a live camera for its whole life: a helper process (edge.camera.helper) reading a video
file through the V4L2 path, paced like a camera. The test freezes the helper (SIGSTOP) as a stalled
camera driver would, and thaws it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge.assembly import camera_opener
from edge.camera.feed import LiveFeed
from edge.config import CameraConfig
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc

from .conftest import EdgeDaemon, connect, make_config

pytestmark = pytest.mark.slow


def helper_pids() -> list[int]:
    mine = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == mine and b"edge.camera.helper" in cmdline:
                found.append(int(entry.name))
    return found


def wait_for(predicate, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, what
        time.sleep(0.05)
    return time.monotonic() - began


def test_a_stalled_camera_turns_health_not_serving_and_back(tmp_path, world, testdata):
    clip = testdata / "video" / "short_hamilton_clip.mp4"
    camera = CameraConfig(source=f"v4l2:{clip}", width=640, height=360, helper_python=sys.executable,
                          frame_timeout_s=1.0, stall_s=1.5)
    feed = LiveFeed(camera_opener(camera), frame_timeout_s=camera.frame_timeout_s, stall_s=camera.stall_s,
                    reopen_min_s=0.2)
    daemon = EdgeDaemon(make_config(tmp_path, world.issuer), camera=feed)
    daemon.start()
    paused: list[int] = []
    try:
        with connect(daemon) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status():
                return health.Check(health_pb2.HealthCheckRequest(), timeout=5).status

            assert status() == health_pb2.HealthCheckResponse.SERVING
            wait_for(helper_pids, 10, "a camera helper runs")
            paused = helper_pids()
            for pid in paused:
                os.kill(pid, signal.SIGSTOP)
            took = wait_for(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING, 10, "NOT_SERVING")
            assert took < 5.0
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as e:  # a session meanwhile: refused in time, not hung
                pb_grpc.VerificationServiceStub(channel).Verify(
                    pb.VerifyRequest(nonce=os.urandom(16)), timeout=3)
            assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            assert time.monotonic() - began < 3.5
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
            paused = []
            wait_for(lambda: status() == health_pb2.HealthCheckResponse.SERVING, 15, "SERVING again")
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        daemon.stop(1.0)
    assert helper_pids() == []  # the daemon's stop ends its camera helper
