"""The bent-photo attack generator (issue 15): geometry of the sheet, and the hole it shows today."""

import numpy as np
import pytest

from edge.imageio import load_image
from edge.liveness import attacks
from edge.liveness.checker import LivenessChecker


def _sheet_masks(seed: int, **kwargs) -> list[np.ndarray]:
    """Where the sheet is in each frame: a white and a black print under the same random draws differ
    there and only there (same room, same noise)."""
    white = np.full((300, 240, 3), 255, np.uint8)
    a = attacks.bent_photo_attack(white, np.random.default_rng(seed), **kwargs)
    b = attacks.bent_photo_attack(np.zeros_like(white), np.random.default_rng(seed), **kwargs)
    return [np.abs(x.astype(int) - y.astype(int)).max(axis=2) > 60 for (_, x), (_, y) in zip(a, b, strict=True)]


def _sheet_mask(radius_widths: float, seed: int) -> np.ndarray:
    return _sheet_masks(seed, frames=1, radius_widths=radius_widths)[0]


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
    centres = [np.flatnonzero(mask.any(axis=0)).mean()
               for mask in _sheet_masks(4, frames=45, radius_widths=0.4)]
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
    def width(yaw_deg: float) -> int:
        [mask] = _sheet_masks(9, frames=1, radius_widths=1e4, yaw_deg_at=lambda t: yaw_deg)
        return int(mask.any(axis=0).sum())

    facing, turned = width(0.0), width(40.0)
    assert abs(turned / facing - np.cos(np.radians(40))) < 0.08  # foreshortened by ~cos(40 deg)


def _side_edge_bend_px(mask: np.ndarray) -> float:
    return _top_edge_bend_px(mask.T)


def test_a_sheet_bent_top_to_bottom_curves_its_sides_not_its_top():
    [horizontal] = _sheet_masks(5, frames=1, radius_widths=0.4, axis="horizontal", yaw_deg_at=lambda t: 0.0)
    [vertical] = _sheet_masks(5, frames=1, radius_widths=0.4, axis="vertical", yaw_deg_at=lambda t: 0.0)
    assert _side_edge_bend_px(horizontal) > 2.5 > _top_edge_bend_px(horizontal) - 1.5
    assert _top_edge_bend_px(vertical) > 2.5 > _side_edge_bend_px(vertical) - 1.5
    with pytest.raises(ValueError, match="axis"):
        attacks.bent_photo_attack(np.zeros((10, 10, 3), np.uint8), np.random.default_rng(0), axis="diagonal")
