"""The liveness window: fixed length for natural movement, long enough to answer a challenge."""

import numpy as np

from edge.liveness.ratelimit import FailureLimiter
from edge.liveness.temporal import Challenge
from edge.pipeline import SitePolicy, VerificationPipeline


class _Detector:
    """Sees one face in every frame (or none)."""

    def __init__(self, face: bool = True) -> None:
        from edge.vision.types import Face

        self.faces = [Face(box=(280.0, 200.0, 80.0, 100.0), landmarks=np.zeros((5, 2), np.float32), score=0.9)] \
            if face else []

    def detect(self, frame):
        return self.faces


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


class _ScriptedLiveness:
    """Answers from a script, recording the challenges it was given (the rules are tested in tests/liveness)."""

    def __init__(self, *reasons: str) -> None:
        self.reasons = list(reasons)
        self.challenges: list[Challenge | None] = []

    def decide(self, detections, images, *, challenge=None):
        from edge.liveness.checker import LivenessResult

        self.challenges.append(challenge)
        reason = self.reasons.pop(0)
        return LivenessResult(live=reason == "challenge_completed", score=0.5, reasons=[reason])


def _live_window(reasons, retries=1, require_challenge=True):
    pipeline = _pipeline(45)
    pipeline.policy = SitePolicy(site="s", gate_id="g", challenge_retries=retries,
                                 require_challenge=require_challenge)
    pipeline.liveness = _ScriptedLiveness(*reasons)  # type: ignore[assignment]
    pipeline.limiter = FailureLimiter(max_failures=2)
    events = []
    result, challenge, _, prompts = pipeline._live_window(_camera(20.0), lambda: None, b"nonce-1",
                                                          lambda kind, text: events.append(kind),
                                                          lambda stage, began: events.append(stage))
    return pipeline.liveness, result, challenge, prompts, events


def test_a_slow_answer_gets_one_fresh_challenge():
    liveness, result, challenge, prompts, events = _live_window(["challenge_not_completed",
                                                                 "challenge_completed"])
    first, second = liveness.challenges
    assert result.live and challenge is second and second.attempt == 1
    assert second == Challenge.from_nonce(b"nonce-1", attempt=1) != first
    assert prompts == [first.prompt, second.prompt] and events.count("retry") == 1
    # both windows are timed (the session sums them per stage)
    assert events.count("capture_detect") == 2 and events.count("liveness") == 2


def test_each_failed_answer_counts_towards_the_failure_limit():
    """A retry must not give an attacker attempts beyond the gate's failure limit: the retried (failed)
    answer is recorded as a failure; the session's own DENY is recorded by verify() as before."""
    pipeline = _pipeline(45)
    pipeline.policy = SitePolicy(site="s", gate_id="g")
    pipeline.liveness = _ScriptedLiveness("challenge_wrong_direction", "challenge_completed")  # type: ignore[assignment]
    pipeline.limiter = FailureLimiter(max_failures=1)
    pipeline._live_window(_camera(20.0), lambda: None, b"n", lambda *_: None, lambda *_: None)
    assert pipeline.limiter.blocked_for() > 0


def test_planar_answers_and_exhausted_retries_are_final():
    liveness, result, _, _, events = _live_window(["challenge_planar", "challenge_completed"])
    assert not result.live and len(liveness.challenges) == 1 and "retry" not in events
    liveness, result, _, _, _ = _live_window(["challenge_not_completed", "challenge_not_completed",
                                              "challenge_completed"])
    assert not result.live and len(liveness.challenges) == 2
    liveness, result, _, _, _ = _live_window(["challenge_not_completed", "challenge_completed"], retries=0)
    assert not result.live and len(liveness.challenges) == 1
    liveness, result, _, _, _ = _live_window(["challenge_required"], require_challenge=False)
    assert liveness.challenges == [None]


def test_a_person_moving_when_the_prompt_came_is_asked_again_and_told_to_hold_still():
    """Issue 15: a person who moves before the prompt should pass on the retry. Before, a swinging head at
    the prompt (challenge_unsteady) was a final DENY, sending the person to the staff desk."""
    pipeline = _pipeline(45)
    pipeline.policy = SitePolicy(site="s", gate_id="g")
    pipeline.liveness = _ScriptedLiveness("challenge_unsteady", "challenge_completed")  # type: ignore[assignment]
    pipeline.limiter = FailureLimiter(max_failures=3)
    events = []
    result, challenge, _, _ = pipeline._live_window(_camera(20.0), lambda: None, b"n",
                                                    lambda kind, text: events.append((kind, text)),
                                                    lambda *_: None)
    assert result.live and challenge.attempt == 1
    # the person sees what to do (a prompt, which the gate shows), the controller that a retry began
    hint = ("prompt", "Please hold still and look at the camera, then follow the next prompt")
    assert ("retry", "challenge_unsteady") in events and events.index(hint) == events.index(("retry",
                                                                                            "challenge_unsteady")) + 1


def test_every_retried_refusal_tells_the_person_what_to_do_differently():
    from edge.liveness.temporal import RETRY_HINTS

    for reason, hint in RETRY_HINTS.items():
        pipeline = _pipeline(45)
        pipeline.policy = SitePolicy(site="s", gate_id="g")
        pipeline.liveness = _ScriptedLiveness(reason, "challenge_completed")  # type: ignore[assignment]
        pipeline.limiter = FailureLimiter(max_failures=3)
        events: list[tuple[str, str]] = []
        pipeline._live_window(_camera(20.0), lambda: None, b"n", lambda kind, text, seen=events: seen.append(
            (kind, text)), lambda *_: None)
        retry = events.index(("retry", reason))
        assert events[retry + 1] == ("prompt", hint)
    assert len(set(RETRY_HINTS.values())) == len(RETRY_HINTS)


class _FaceFrom:
    """Sees a face only from ``since`` seconds on (before, the phone that showed the card hides it);
    remembers the time of the frame it last looked at."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.now = -1.0
        self.faces = _Detector().faces

    def detect(self, frame):
        self.now = float(frame[0, 0, 0]) / 30.0
        return self.faces if self.now >= self.since else []


def _stamped_camera(seconds: float, fps: float = 30.0):
    """Frames that carry their own number (the detector reads the time from the pixels)."""
    return iter([(i / fps, np.full((4, 4, 3), i, np.uint8)) for i in range(int(seconds * fps))])


def test_the_challenge_waits_for_the_face_before_its_prompt():
    """The prompt was shown prompt_at_s after the card was read, whether or not a face was in view: a person
    still lowering the phone that showed the card was asked to turn before the camera saw them."""
    challenge = Challenge.from_nonce(b"late prompt nonce")
    pipeline = _pipeline(45)
    detector = _FaceFrom(since=1.5)
    pipeline.faces = type("Faces", (), {"detector": detector})()  # type: ignore[assignment]
    prompts = []
    detections, images = pipeline._capture_window(_stamped_camera(8.0), lambda: None, challenge,
                                                  lambda kind, text: prompts.append((text, detector.now)))
    assert [text for text, _ in prompts] == ["Please look at the camera", challenge.prompt]
    assert 0.5 <= prompts[0][1] < 0.6 and prompts[1][1] >= 1.5 + challenge.prompt_at_s - 1 / 30
    assert detections[0][0] == 0.0 and detections[0][1]  # the window starts with the face
    assert detections[-1][0] >= challenge.prompt_at_s + challenge.window_s - 1 / 30
    assert len(images) == len(detections)


def test_a_window_without_any_face_ends_after_the_wait_not_after_a_whole_challenge():
    from edge.gate.window import FACE_WAIT_S

    frames = _camera(10.0)
    pipeline = _pipeline(45)
    pipeline.faces = type("Faces", (), {"detector": _Detector(face=False)})()  # type: ignore[assignment]
    events = []
    detections, _ = pipeline._capture_window(frames, lambda: None, Challenge.from_nonce(b"n"),
                                             lambda kind, text: events.append(kind))
    # One request to look at the camera, no challenge for nobody: the checker says no_face (a RETRY).
    assert detections == [] and events == ["prompt"]
    assert len(list(frames)) >= (10.0 - FACE_WAIT_S) * 30 - 2  # the rest of the camera's frames are unread


def test_a_retry_gives_the_person_time_to_read_the_hint_and_face_the_camera_again():
    """After a refused answer the person is still turned, and the retry's hint is on the screen. The retry's
    prompt came 0.3-1.0 s after the hint, while they read it and turned back: the swing back read as a head
    already moving at the prompt (challenge_unsteady), and the retry, the one meant to let them through, was
    refused. Here a person reacts to what the gate shows: 0.4 s after the first prompt they turn 15 degrees
    with the shoulders (pivot-less, retried); 0.3 s after the hint they turn back over 0.5 s; 0.4 s after
    the second prompt they turn only the head, 12 degrees. They must pass."""
    from edge.liveness.checker import LivenessChecker, LivenessThresholds
    from tests.liveness.test_temporal_and_fusion import head

    fps = 30.0
    nonce = next(n for n in (b"retry-%d" % i for i in range(500))
                 if Challenge.from_nonce(n).direction == Challenge.from_nonce(n, attempt=1).direction)
    sign = -1.0 if Challenge.from_nonce(nonce).direction == "left" else 1.0  # the model's rotation, asked way
    shown: dict[str, float] = {}  # what the gate showed, and when (camera time)
    now = [0.0]

    def ramp(start: float | None, length: float = 0.5) -> float:
        return 0.0 if start is None else min(max((now[0] - start) / length, 0.0), 1.0)

    def pose() -> tuple[float, float]:
        """(yaw in the model's degrees, pivot) of the person's head now."""
        if "hint" not in shown or now[0] < shown["hint"] + 0.8:
            first = 15.0 * ramp(shown["prompt 0"] + 0.4 if "prompt 0" in shown else None)
            return sign * first * (1.0 - ramp(shown.get("hint") and shown["hint"] + 0.3)), 0.0
        return sign * 12.0 * ramp(shown["prompt 1"] + 0.4 if "prompt 1" in shown else None), 1.4

    class Person:
        def detect(self, frame):
            now[0] = (int(frame[0, 0, 0]) * 256 + int(frame[0, 0, 1])) / fps
            yaw, pivot = pose()
            return [head(yaw, pivot=pivot)]

    def on_event(kind: str, text: str) -> None:
        if kind == "prompt":  # the challenge's prompt, the retry's hint, the second challenge's prompt
            shown[["prompt 0", "hint", "prompt 1"][len(shown)]] = now[0]

    image = np.random.default_rng(0).integers(60, 200, (480, 640, 3), dtype=np.uint8)

    def camera():
        for i in range(int(14 * fps)):
            frame = image.copy()
            frame[0, 0, :2] = (i // 256, i % 256)
            yield i / fps, frame

    pipeline = _pipeline(45)
    pipeline.faces = type("Faces", (), {"detector": Person()})()  # type: ignore[assignment]
    pipeline.policy = SitePolicy(site="s", gate_id="g")
    pipeline.liveness = LivenessChecker(None, LivenessThresholds(require_challenge=True))
    pipeline.limiter = FailureLimiter(max_failures=3)
    retries = []
    result, challenge, _, _ = pipeline._live_window(
        camera(), lambda: None, nonce, lambda kind, text: retries.append(text) if kind == "retry" else on_event(
            kind, text), lambda *_: None)
    assert retries == ["challenge_pivoted"] and list(shown) == ["prompt 0", "hint", "prompt 1"]
    assert challenge.attempt == 1 and result.live, (result.reasons, shown, result.cues.get("challenge"))


def test_a_challenge_window_keeps_only_the_frames_its_checks_can_use():
    """A challenge window at 30 fps is up to 3.5 s: 105 full 640x480 frames, 97 MB held at once on a board
    whose daemon budget is 250 MB (the memory bench measured 45-frame passive sessions only). The liveness
    cues read eight frames spread over the track and the match the three with the largest face, so the
    window keeps every fourth frame and the three largest faces so far; the rest keep their detections."""
    from edge.gate.window import KEEP_EVERY, MATCH_FRAMES
    from edge.vision.types import Face

    sizes = [40.0 + 10.0 * np.sin(i / 7.0) for i in range(200)]  # the face grows and shrinks as people move

    class Moving:
        def detect(self, frame):
            size = sizes[int(frame[0, 0, 0])]
            landmarks = np.array([[0, 0], [size, 0], [size / 2, size / 2], [0, size], [size, size]], np.float32)
            return [Face(box=(100.0, 100.0, 2 * size, 2 * size), landmarks=landmarks, score=0.9)]

    challenge = Challenge.from_nonce(b"late prompt nonce")
    pipeline = _pipeline(45)
    pipeline.faces = type("Faces", (), {"detector": Moving()})()  # type: ignore[assignment]
    detections, images = pipeline._capture_window(_stamped_camera(8.0), lambda: None, challenge, lambda *_: None)
    kept = [i for i, image in enumerate(images) if image is not None]
    assert len(detections) == len(images) > 60
    assert len(kept) <= len(images) // KEEP_EVERY + 1 + MATCH_FRAMES
    largest = sorted(range(len(detections)), key=lambda i: -detections[i][1][0].eye_distance)[:MATCH_FRAMES]
    assert set(largest) <= set(kept) and set(range(0, len(images), KEEP_EVERY)) <= set(kept)
