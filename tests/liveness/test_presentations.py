"""Challenge presentations for evaluation: turns are found, and each cut answers its own nonce."""

import numpy as np
import pytest

from edge.liveness.presentations import FPS, answering_turn, cut_for_turn, turn_onsets
from edge.liveness.temporal import Challenge


def _yaw_track(turns: list[tuple[float, float]], seconds: float = 8.0):
    """Yaw (degrees) at 30 fps: steady, then each (start s, change deg) turn over 0.5 s and held."""
    times = np.arange(0, seconds, 1 / FPS)
    yaw = np.zeros_like(times)
    for start, change in turns:
        yaw += change * np.clip((times - start) / 0.5, 0, 1)
    return list(times), yaw


def test_turns_after_a_steady_stretch_are_found_with_their_sign():
    times, yaw = _yaw_track([(1.0, 12.0), (4.0, -15.0)])
    onsets = turn_onsets(times, yaw)
    assert [sign for _, sign in onsets] == [1.0, -1.0]
    assert abs(onsets[0][0] - 1.0) < 0.1 and abs(onsets[1][0] - 4.0) < 0.1


def test_small_turns_and_swinging_are_not_turns():
    times, yaw = _yaw_track([(1.0, 5.0)])
    assert turn_onsets(times, yaw) == []
    times = list(np.arange(0, 6, 1 / FPS))
    swinging = 10 * np.sin(2 * np.pi * np.array(times) / 0.6)  # never steady for 0.4 s
    assert turn_onsets(times, swinging) == []


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_cut_puts_the_matching_prompt_a_reaction_before_the_turn(sign):
    rng = np.random.default_rng(3)
    for _ in range(20):
        cut = cut_for_turn(300, 4.0, sign, rng)
        assert cut is not None
        assert cut.challenge == Challenge.from_nonce(cut.nonce) and cut.challenge.yaw_sign == sign
        reaction = 4.0 - (cut.first / FPS + cut.challenge.prompt_at_s)
        assert 0.3 - 1 / FPS <= reaction <= 0.7 + 1 / FPS


def test_no_cut_when_the_clip_is_too_short_around_the_turn():
    rng = np.random.default_rng(0)
    assert cut_for_turn(300, 0.2, 1.0, rng) is None  # the prompt would come before the clip starts
    assert cut_for_turn(int(4.0 * FPS) + 10, 4.0, 1.0, rng) is None  # the clip ends just after the turn


def test_the_photo_answers_after_the_prompt_in_the_asked_direction():
    rng = np.random.default_rng(1)
    for nonce in (b"a" * 16, b"b" * 16, b"c" * 16, b"d" * 16):
        challenge = Challenge.from_nonce(nonce)
        turn = answering_turn(challenge, rng)
        assert turn(challenge.prompt_at_s) == 0.0
        final = turn(challenge.prompt_at_s + 2.0)
        assert 25 <= abs(final) <= 45
        assert np.sign(final) == -challenge.yaw_sign  # a sheet turned +x shows negative estimated yaw


def test_a_clip_with_one_turn_gives_one_cut_that_answers_it():
    from edge.liveness.presentations import turn_cuts
    from edge.liveness.temporal import challenge_answered

    from .test_temporal_and_fusion import head

    times = np.arange(0, 8.0, 1 / FPS)
    yaws = -20.0 * np.clip((times - 4.0) / 0.5, 0, 1)  # a 20 degree turn to the person's left at 4 s
    frames = [(float(t), np.zeros((4, 4, 3), np.uint8)) for t in times]
    detections = [(float(t), [head(y)]) for t, y in zip(times, yaws, strict=True)]
    cuts = list(turn_cuts(frames, detections, np.random.default_rng(2)))
    assert len(cuts) == 1
    cut, window = cuts[0]
    assert cut.challenge.direction == "left" and window[0][0] == 0.0 and len(window) == 105
    faces = [faces[0] for _, faces in detections[cut.first:cut.first + 105]]
    assert challenge_answered(cut.challenge, [t for t, _ in window], faces) == (True, "challenge_completed")
