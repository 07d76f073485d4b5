import math

import numpy as np
import pytest

from edge.liveness.checker import LivenessChecker, LivenessThresholds
from edge.liveness.evaluation import Outcome, metrics, upper_bound_95
from edge.liveness.temporal import Challenge, challenge_answered, eye_travel, nose_residuals
from edge.liveness.tracking import follow
from edge.vision.types import Face

# A 5-point head in 3-D (pixels, camera looks along +z): eyes and mouth on a plane, the nose 0.6 eye
# distances in front of it, turning about a neck 1.4 eye distances behind the eyes. ``nose_depth=0`` with
# ``pivot=0`` is a flat photo turned about its middle; ``pivot=0`` alone is a sheet bent so that its nose
# stands out as a head's does (what five landmarks see of a photo bent around a vertical axis).
EYE = 60.0


def head(yaw_deg, nose_depth=0.6, pivot=1.4, centre=(320.0, 240.0), focal=800.0, distance=600.0):
    points = np.array([[-EYE / 2, -20, 0], [EYE / 2, -20, 0], [0, 15, -nose_depth * EYE], [-25, 45, 0], [25, 45, 0]])
    a = math.radians(yaw_deg)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    axis = np.array([0.0, 0.0, pivot * EYE])
    p = (points - axis) @ rot.T + axis + [0, 0, distance]
    uv = focal * p[:, :2] / p[:, 2:3] + centre
    box = (uv[:, 0].min() - 30, uv[:, 1].min() - 50, np.ptp(uv[:, 0]) + 60, np.ptp(uv[:, 1]) + 90)
    return Face(box=tuple(float(v) for v in box), landmarks=uv.astype(np.float32), score=0.95)


def turn(challenge, nose_depth=0.6, direction=None, start=None, fps=30.0, seconds=2.5, amplitude=12.0, pivot=1.4):
    direction = direction or challenge.direction
    # In this model a positive rotation moves the nose to the image's left, i.e. towards the person's right.
    sign = -1.0 if direction == "left" else 1.0
    start = challenge.prompt_at_s + 0.2 if start is None else start
    times, faces = [], []
    for i in range(int(seconds * fps)):
        t = i / fps
        progress = min(max((t - start) / 0.5, 0.0), 1.0)
        faces.append(head(sign * amplitude * progress, nose_depth, pivot))
        times.append(t)
    return times, faces


def test_challenge_is_bound_to_the_nonce():
    a, b = Challenge.from_nonce(b"n" * 16), Challenge.from_nonce(b"n" * 16)
    assert a == b
    challenges = [Challenge.from_nonce(bytes([i]) * 16) for i in range(40)]
    variety = {(c.direction, round(c.prompt_at_s, 2)) for c in challenges}
    assert {d for d, _ in variety} == {"left", "right"} and len(variety) > 10
    c = Challenge.from_nonce(b"x" * 16)
    assert 0.3 <= c.prompt_at_s <= 1.0 and c.direction in c.prompt
    # The in-session retry is drawn independently from the same nonce.
    retries = [Challenge.from_nonce(bytes([i]) * 16, attempt=1) for i in range(40)]
    assert all(r.attempt == 1 for r in retries)
    assert sum(r.direction != c.direction for r, c in zip(retries, challenges, strict=True)) >= 10
    assert all(r.prompt_at_s != c.prompt_at_s for r, c in zip(retries, challenges, strict=True))


@pytest.mark.parametrize("amplitude", [6.0, 12.0, 25.0])
def test_real_head_turn_answers_the_challenge(amplitude):
    challenge = Challenge.from_nonce(b"session-1")
    times, faces = turn(challenge, amplitude=amplitude)
    assert challenge_answered(challenge, times, faces) == (True, "challenge_completed")
    assert 0.6 < eye_travel(challenge, times, faces) < 2.0  # the eyes travel with a turn about the neck


def test_wrong_direction_early_turn_and_flat_photo_fail():
    challenge = Challenge.from_nonce(b"session-1")
    other = "right" if challenge.direction == "left" else "left"
    assert challenge_answered(challenge, *turn(challenge, direction=other))[1] == \
        "challenge_wrong_direction"
    # Turned before the prompt and held: the answer is measured from the pose at the prompt, so nothing moved.
    assert challenge_answered(challenge, *turn(challenge, start=-1.0))[1] == "challenge_not_completed"
    assert challenge_answered(challenge, *turn(challenge, amplitude=1.5))[1] == \
        "challenge_not_completed"
    # A head swinging the other way before the prompt, then the asked way: unsteady, refused.
    times, faces = turn(challenge)
    sign = -1.0 if challenge.direction == "left" else 1.0
    early = [i for i, t in enumerate(times) if t < challenge.prompt_at_s]
    for i in early[len(early) // 2:]:
        faces[i] = head(-sign * 14.0)
    assert challenge_answered(challenge, times, faces)[1] == "challenge_unsteady"
    # A flat photo turned the same way about its middle: its landmarks barely fake a yaw, and what they fake
    # is planar and does not travel.
    ok, why = challenge_answered(challenge, *turn(challenge, nose_depth=0.0, amplitude=60, pivot=0.0))
    assert not ok and why in ("challenge_planar", "challenge_not_completed", "challenge_pivoted")


def test_a_sheet_whose_nose_stands_out_turned_about_its_middle_is_refused():
    # Five landmarks of a photo bent around a vertical axis: the nose in front of the eyes and mouth, as on a
    # head, so the depth test passes; but the sheet turns about its own middle and the eyes stay in place.
    challenge = Challenge.from_nonce(b"session-1")
    times, faces = turn(challenge, amplitude=20, pivot=0.0)
    assert challenge_answered(challenge, times, faces) == (False, "challenge_pivoted")
    assert abs(eye_travel(challenge, times, faces)) < 0.2


@pytest.mark.parametrize("amplitude", [8.0, 12.0, 20.0])
def test_implied_depth_is_amplitude_independent(amplitude):
    from edge.liveness.temporal import implied_nose_depth, yaw_series

    faces = [head(y) for y in np.linspace(0, amplitude, 15)]
    flat = [head(y, nose_depth=0.0) for y in np.linspace(0, amplitude, 15)]
    assert implied_nose_depth(faces, yaw_series(faces), amplitude / 2) > 0.45
    assert implied_nose_depth(flat, yaw_series(flat), 0.0) < 0.1


def test_nose_residual_separates_depth_from_plane():
    real = nose_residuals([head(y) for y in np.linspace(0, 25, 20)])
    flat = nose_residuals([head(y, nose_depth=0.0) for y in np.linspace(0, 25, 20)])
    assert np.percentile(real, 75) > 0.15 > 0.01 > np.percentile(flat, 75)


def test_tracking_fails_closed_on_a_swapped_face():
    a, b = head(0), Face(box=(10, 10, 80, 100), landmarks=head(0).landmarks - 300, score=0.9)
    detections = [(i / 30, [a]) for i in range(10)] + [(i / 30, [b]) for i in range(10, 20)]
    assert follow(detections).broken == "face_changed"
    assert follow([(i / 30, [a]) for i in range(5)] + [(i / 30, []) for i in range(5, 15)]).broken == "face_lost"


class _NoDetector:
    def detect(self, frame):
        return []


def test_checker_fails_closed_without_a_face():
    result = LivenessChecker(_NoDetector()).check([(i / 30, np.zeros((48, 64, 3), np.uint8)) for i in range(10)])
    assert not result.live and result.reasons == ["no_face"] and result.failure_to_acquire


def test_checker_fails_closed_on_too_few_frames():
    class OneFace:
        def detect(self, frame):
            return [head(0)]

    result = LivenessChecker(OneFace(), LivenessThresholds(min_frames=8)).check(
        [(i / 30, np.zeros((480, 640, 3), np.uint8)) for i in range(3)])
    assert not result.live and result.reasons == ["too_few_frames"]


def test_metrics():
    outcomes = [Outcome("live", True, 0.8, False), Outcome("live", False, 0.0, False), Outcome("live", False, 0, True),
                Outcome("attack_print", False, 0.0, False), Outcome("attack_print", True, 0.6, False),
                Outcome("attack_replay", False, 0.0, False)]
    report = metrics(outcomes)
    assert report["attacks"]["attack_print"]["apcer"] == 0.5
    assert report["attacks"]["attack_replay"]["apcer"] == 0.0
    assert report["apcer_ap"] == 0.5
    assert report["live"]["bpcer"] == 0.5 and report["live"]["fta"] == pytest.approx(1 / 3)
    assert report["bpcer_at_apcer_1pct"] == 0.5  # threshold 0.6 stops the print; live 0.8 passes, 0.0 not
    assert upper_bound_95(0, 100) == 0.03
    assert 0.05 < upper_bound_95(5, 50) < 0.25


class _Steady:
    """A detector that always sees the same frontal face (a 3-D head at yaw 0)."""

    def detect(self, frame):
        return [head(0)]


@pytest.mark.parametrize("fill,reason,prompt", [
    (8, "face_too_dark", "Please face the light"),
    (250, "face_too_bright", "Please step out of the bright light"),
    (128, "face_blurred", "Please hold still for a moment"),  # flat grey: no detail at all
])
def test_quality_failures_become_prompts_not_attacks(fill, reason, prompt):
    frames = [(i / 30, np.full((480, 640, 3), fill, np.uint8)) for i in range(20)]
    result = LivenessChecker(_Steady()).check(frames)
    assert not result.live and result.reasons == [reason]
    assert result.failure_to_acquire and result.prompts == [prompt]


def test_turned_away_face_is_asked_to_face_the_camera():
    class Turned:
        def detect(self, frame):
            return [head(50)]

    frames = [(i / 30, np.random.default_rng(i).integers(60, 200, (480, 640, 3), dtype=np.uint8)) for i in range(20)]
    result = LivenessChecker(Turned()).check(frames)
    assert result.reasons == ["face_turned"] and result.prompts == ["Please face the camera"]


def test_the_prompt_is_timed_from_the_window_start_not_from_the_first_face():
    """At a gate the face often appears some frames into the window (the phone that showed the card is
    still being lowered). The prompt is shown at ``prompt_at_s`` from the window's start; the checker timed
    it from the first frame with a face, so a person who turned on time looked as if they had been turning
    before the prompt (until 2026-12-07: challenge_unsteady for a face that appeared 0.6 s in)."""
    challenge = next(c for c in (Challenge.from_nonce(b"late-%d" % n) for n in range(200)) if c.prompt_at_s > 0.9)
    times, faces = turn(challenge, seconds=challenge.prompt_at_s + challenge.window_s + 0.1)
    image = np.random.default_rng(0).integers(60, 200, (480, 640, 3), dtype=np.uint8)  # passes the quality gates
    checker = LivenessChecker(None, LivenessThresholds(require_challenge=True))
    for hidden_s in (0.0, 0.6, 0.8):  # the face is in view from this moment, before the prompt
        detections = [(t, [face] if t >= hidden_s else []) for t, face in zip(times, faces, strict=True)]
        result = checker.decide(detections, [image] * len(detections), challenge=challenge)
        assert result.live and result.reasons == ["challenge_completed"], (hidden_s, result.reasons)
