import cv2
import numpy as np
import pytest

from edge.camera.sources import ReplaySource, open_source
from edge.errors import CameraError


def test_folder_replay_timestamps_and_bad_frames(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    (tmp_path / "004.png").write_bytes(b"broken")
    with ReplaySource(tmp_path, fps=10) as source:
        got = list(source.frames())
    assert [round(t, 3) for t, _ in got] == [0.0, 0.1, 0.2]
    assert [int(f[0, 0, 0]) for _, f in got] == [0, 50, 100]


def test_video_replay(testdata):
    with ReplaySource(testdata / "video" / "short_hamilton_clip.mp4", max_frames=5) as source:
        got = list(source.frames())
    assert len(got) == 5 and got[1][0] == pytest.approx(1 / 29.97, rel=1e-3)
    assert got[0][1].shape == (360, 640, 3)


def test_missing_and_empty(tmp_path):
    with pytest.raises(CameraError):
        ReplaySource(tmp_path / "nope.mp4")
    with pytest.raises(CameraError):
        list(ReplaySource(tmp_path).frames())
    assert isinstance(open_source(str(tmp_path)), ReplaySource)


def test_opencv_source_reads_through_videocapture(testdata):
    # No camera here: OpenCV's VideoCapture opens a file path the same way it opens /dev/videoN.
    from edge.camera.sources import OpenCVSource

    with OpenCVSource(str(testdata / "video" / "short_hamilton_clip.mp4")) as source:
        frames = []
        for t, frame in source.frames():
            frames.append((t, frame))
            if len(frames) == 3:
                break
    assert [f.shape for _, f in frames] == [(360, 640, 3)] * 3
    # Times are the stream's own (CAP_PROP_POS_MSEC), not the moment read() returned.
    assert frames[2][0] - frames[1][0] == pytest.approx(1 / 29.97, rel=1e-2)


def test_opencv_source_applies_the_mounting(testdata):
    from edge.camera.sources import OpenCVSource

    clip = str(testdata / "video" / "short_hamilton_clip.mp4")
    with OpenCVSource(clip) as plain, OpenCVSource(clip, rotation=180) as turned:
        _, a = next(iter(plain.frames()))
        _, b = next(iter(turned.frames()))
    np.testing.assert_array_equal(b, a[::-1, ::-1])


def test_opencv_source_missing_device_is_typed():
    from edge.camera.sources import OpenCVSource

    with pytest.raises(CameraError) as e:
        OpenCVSource("/dev/video-that-does-not-exist")
    assert e.value.code == "camera_unavailable"


@pytest.mark.parametrize("layout", ["text_as_video", "folder_of_broken_frames", "start_past_the_end"])
def test_a_source_that_yields_no_frame_at_all_is_a_camera_error_not_an_empty_session(tmp_path, testdata, layout):
    """Zero frames is not a scene without a face: `edge liveness notes.jpg` said NOT LIVE / no_face."""
    if layout == "text_as_video":
        path, start = tmp_path / "notes.jpg", 0.0
        path.write_text("not a video")
    elif layout == "folder_of_broken_frames":
        path, start = tmp_path, 0.0
        (tmp_path / "000.png").write_bytes(b"broken")
        (tmp_path / "001.jpg").write_bytes(b"\xff\xd8 truncated")
    else:
        path, start = testdata / "video" / "short_hamilton_clip.mp4", 3600.0
    with pytest.raises(CameraError) as caught, ReplaySource(path, start_s=start) as source:
        list(source.frames())
    assert caught.value.code == "camera_unavailable" and "no readable frame" in caught.value.message
