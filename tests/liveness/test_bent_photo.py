"""The bent-photo attack generator (issue 15): geometry of the sheet, and the hole it shows today."""

import numpy as np
import pytest

from edge.imageio import load_image
from edge.liveness import attacks
from edge.liveness.checker import LivenessChecker


def _sheet_mask(radius_widths: float, seed: int) -> np.ndarray:
    """Where the sheet is in frame 0: a white and a black print under the same random draws differ there
    and only there (same room, same noise)."""
    white = np.full((300, 240, 3), 255, np.uint8)
    black = np.zeros_like(white)
    a = attacks.bent_photo_attack(white, np.random.default_rng(seed), frames=1, radius_widths=radius_widths)
    b = attacks.bent_photo_attack(black, np.random.default_rng(seed), frames=1, radius_widths=radius_widths)
    return np.abs(a[0][1].astype(int) - b[0][1].astype(int)).max(axis=2) > 60


def _top_edge_bend_px(mask: np.ndarray) -> float:
    """Largest distance of the sheet's top edge from the straight line fitted through it, in pixels."""
    columns = np.flatnonzero(mask.any(axis=0))
    inner = columns[int(len(columns) * 0.1): int(len(columns) * 0.9)]
    top = np.array([np.argmax(mask[:, c]) for c in inner], float)
    fit = np.polyval(np.polyfit(inner, top, 1), inner)
    return float(np.abs(top - fit).max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_tightly_bent_sheet_has_a_curved_edge_and_a_nearly_flat_one_does_not(seed):
    bent = _sheet_mask(0.5, seed)
    flat = _sheet_mask(50.0, seed)
    assert bent.sum() > 0.1 * bent.size and flat.sum() > 0.1 * flat.size
    assert _top_edge_bend_px(bent) > 2.5  # 3.1-4.0 px measured
    assert _top_edge_bend_px(flat) < 1.0  # 0.5 px: pixel rounding of a straight edge


def test_the_sheet_turns_over_the_presentation():
    white = np.full((300, 240, 3), 255, np.uint8)
    frames = attacks.bent_photo_attack(white, np.random.default_rng(4), frames=45, radius_widths=0.4)
    black = attacks.bent_photo_attack(np.zeros_like(white), np.random.default_rng(4), frames=45, radius_widths=0.4)
    centres = []
    for (_, w), (_, b) in zip(frames, black, strict=True):
        mask = np.abs(w.astype(int) - b.astype(int)).max(axis=2) > 60
        centres.append(np.flatnonzero(mask.any(axis=0)).mean())
    assert max(centres) - min(centres) > 5.0  # the silhouette moves as the sheet turns


def test_trimmed_to_face_keeps_the_head_and_fills_the_view():
    photo = np.zeros((1000, 1000, 3), np.uint8)
    head = attacks.trimmed_to_face(photo, (400, 300, 200, 240))
    assert head.shape[:2] == (672, 605)  # 1.4 x 240 above and below the centre, 0.9 of that either side


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 15 open: a tightly bent photo turned slowly passes the "
                                       "five-landmark planarity cue (bench/liveness_bent.py measures how often)")
def test_bent_photo_is_refused_passively(face_stage, testdata):
    photo = load_image(sorted((testdata / "faces" / "people").glob("*/*.jp*g"))[6])
    [head] = attacks.trimmed_heads([photo], face_stage.detector)
    presentation = attacks.bent_photo_attack(head, np.random.default_rng(7),
                                             radius_widths=0.3)
    result = LivenessChecker(face_stage.detector).check(presentation)
    assert not result.failure_to_acquire
    assert not result.live, result.reasons


def test_a_yaw_schedule_turns_the_sheet_as_given():
    white = np.full((300, 240, 3), 255, np.uint8)

    def width(yaw_deg: float) -> int:
        kwargs = {"frames": 1, "radius_widths": 1e4, "yaw_deg_at": lambda t: yaw_deg}
        a = attacks.bent_photo_attack(white, np.random.default_rng(9), **kwargs)[0][1]
        b = attacks.bent_photo_attack(np.zeros_like(white), np.random.default_rng(9), **kwargs)[0][1]
        return int((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 60).any(axis=0).sum())

    facing, turned = width(0.0), width(40.0)
    assert abs(turned / facing - np.cos(np.radians(40))) < 0.08  # foreshortened by ~cos(40 deg)
