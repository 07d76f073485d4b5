"""Generated attacks from real faces against the real checker (models, Numba cues, optional PAD)."""

import numpy as np
import pytest

from edge.camera.sources import ReplaySource
from edge.imageio import load_image
from edge.liveness import attacks
from edge.liveness.checker import LivenessChecker, LivenessThresholds
from edge.liveness.temporal import Challenge

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checker(face_stage):
    return LivenessChecker(face_stage.detector)


@pytest.fixture(scope="module")
def speaker(testdata):
    # 3.2-4.7 s of the clip: one speaker, no scene cut, natural head movement.
    with ReplaySource(testdata / "video" / "short_hamilton_clip.mp4", start_s=3.2, max_frames=45) as source:
        return list(source.frames())


def test_live_speaker_is_accepted_passively(checker, speaker):
    result = checker.check(speaker)
    assert result.live, result.reasons
    assert result.cues["planarity"]["fired"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_static_and_waved_photos_are_refused(checker, testdata, seed):
    rng = np.random.default_rng(seed)
    photo = load_image(sorted((testdata / "faces" / "people").glob("*/*.jp*g"))[seed * 3])
    for presentation in (attacks.print_attack(photo, rng), attacks.waved_photo_attack(photo, rng)):
        result = checker.check(presentation)
        assert not result.live


def test_replay_needs_the_challenge(face_stage, speaker):
    rng = np.random.default_rng(3)
    replay = attacks.replay_attack(speaker, rng)
    strict = LivenessChecker(face_stage.detector, LivenessThresholds(require_challenge=True))
    refused = 0
    for i in range(6):
        result = strict.check(replay, challenge=Challenge.from_nonce(bytes([i]) * 16))
        refused += not result.live
    assert refused == 6
