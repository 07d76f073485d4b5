"""The adapter driving the real picamera2 package (PyPI 0.3.38, pinned in constraints.txt), with only the
hardware bindings faked at their boundary: libcamera (tests/camera/fake_libcamera/libcamera) and pykms, the
DRM display binding picamera2 imports for its previews. picamera2's own code runs unchanged: configuration,
buffer allocation (its LibcameraAllocator over memfd buffers; the default DMA-heap allocator needs
/dev/dma_heap, which a Pi has), the event loop, requests, mmap of the buffers, metadata. A wrong call, a
wrong format or a leaked camera fails here.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest

FAKE = Path(__file__).resolve().parent / "fake_libcamera"
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def picamera2():
    pytest.importorskip("pidng", reason="picamera2's dependencies are installed by scripts/setup.sh (dev)")
    sys.path.insert(0, str(FAKE))
    try:
        import picamera2 as module
    except ImportError as exc:
        pytest.skip(f"picamera2 is not installed ({exc}); scripts/setup.sh installs it for development")
    finally:
        sys.path.remove(str(FAKE))
    return module


@pytest.fixture
def camera(picamera2):
    import libcamera

    manager = libcamera.CameraManager.singleton()
    manager.fail_configure = False
    device = manager.cameras[0]
    device.resume()
    yield device
    device.resume()


def source(picamera2, camera, **options):
    from picamera2.allocators import LibcameraAllocator

    from edge.camera.picam import PiCamera2Source

    return PiCamera2Source(module=picamera2, allocator=LibcameraAllocator(camera), **options)


def test_frames_come_from_the_camera_with_its_timestamps_and_settings(picamera2, camera):
    import libcamera

    with source(picamera2, camera, width=640, height=480, fps=30, rotation=180,
                controls={"AeMeteringMode": 1, "AfMode": 2}) as cam:
        stream = cam.frames()
        frames = [next(stream) for _ in range(8)]
        assert camera.acquired and camera.started
        config = camera.configured.at(0)
        assert str(config.pixel_format) == "RGB888" and config.size == libcamera.Size(640, 480)
        assert camera.configured.orientation == libcamera.Orientation.Rotate180  # the mounting
        assert camera.start_controls[libcamera.controls.FrameDurationLimits] == (33333, 33333)
        assert camera.start_controls[libcamera.controls.AeMeteringMode] == 1  # AfMode: not on this camera
    assert all(f.shape == (480, 640, 3) and f.flags["C_CONTIGUOUS"] for _, f in frames)
    values = [int(f[0, 0, 0]) for _, f in frames]
    assert values == sorted(values) and len(set(values)) == len(values)  # distinct frames, in order
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(frames)]
    assert all(0.02 < g < 0.2 for g in gaps)  # SensorTimestamp (ns) as seconds, at ~30 fps
    assert camera.frames_made > camera.configured.at(0).buffer_count  # requests were released and requeued
    assert camera.log[-2:] == ["stop", "release"] and not camera.acquired


def test_a_stalled_camera_is_a_timeout_and_the_camera_can_be_opened_again(picamera2, camera):
    from edge.errors import CameraError

    cam = source(picamera2, camera, frame_timeout_s=0.3)
    stream = cam.frames()
    next(stream)
    camera.stall()
    began = time.monotonic()
    with pytest.raises(CameraError) as e:
        for _ in range(10):
            next(stream)
    assert e.value.code == "camera_stalled" and time.monotonic() - began < 2.0
    cam.close()
    assert not camera.acquired  # nothing leaked: the owner can reopen it
    camera.resume()
    with source(picamera2, camera, frame_timeout_s=1.0) as again:
        assert next(again.frames())[1].shape == (480, 640, 3)


def test_a_refused_configuration_releases_the_camera(picamera2, camera):
    import libcamera

    from edge.errors import CameraError

    libcamera.CameraManager.singleton().fail_configure = True
    with pytest.raises(CameraError) as e:
        source(picamera2, camera)
    assert e.value.code == "camera_unavailable" and not camera.acquired and not camera.started
