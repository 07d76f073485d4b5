"""The liveness window: fixed length for natural movement, long enough to answer a challenge."""

import numpy as np

from edge.liveness.temporal import Challenge
from edge.pipeline import SitePolicy, VerificationPipeline


class _Detector:
    def detect(self, frame):
        return []


class _Faces:
    detector = _Detector()


def _pipeline(frames: int) -> VerificationPipeline:
    pipeline = VerificationPipeline.__new__(VerificationPipeline)
    pipeline.faces = _Faces()  # type: ignore[assignment]
    pipeline.policy = SitePolicy(site="s", gate_id="g", liveness_frames=frames)
    return pipeline


def _camera(seconds: float = 10.0, fps: float = 30.0):
    return iter([(i / fps, np.zeros((4, 4, 3), np.uint8)) for i in range(int(seconds * fps))])


def test_window_without_challenge_is_the_configured_frame_count():
    detections, _ = _pipeline(45)._capture_window(_camera(), lambda: None, None, lambda *_: None)
    assert len(detections) == 45


def test_window_with_challenge_covers_prompt_and_response():
    challenge = Challenge.from_nonce(b"late prompt nonce")
    events = []
    detections, _ = _pipeline(45)._capture_window(_camera(), lambda: None, challenge,
                                                 lambda kind, text: events.append((kind, text)))
    last_t = detections[-1][0]
    assert last_t >= challenge.prompt_at_s + challenge.window_s - 1 / 30
    assert len(detections) > 45  # longer than the natural-movement window
    assert events == [("prompt", challenge.prompt)]
