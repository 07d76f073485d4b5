"""Face models' templates: the fused score, combining frames, and what a template must look like."""

import numpy as np
import pytest

from edge.errors import SecurityError
from edge.vision.matcher import SFACE, SFACE_DLIB, FaceMatcher, face_model_by_id


def _fused(sface: np.ndarray, dlib: np.ndarray) -> np.ndarray:
    return np.concatenate([sface / np.linalg.norm(sface), dlib]).astype(np.float32)


def test_the_fused_score_weighs_cosine_and_dlib_distance():
    rng = np.random.default_rng(0)
    s1, s2 = rng.normal(size=(2, 128))
    d1 = rng.normal(size=128)
    d1 *= 1.4 / np.linalg.norm(d1)
    d2 = d1 + 0.05 * rng.normal(size=128)
    a, b = _fused(s1, d1), _fused(s2, d2)
    cosine = float(a[:128] @ b[:128])
    distance = float(np.linalg.norm(d1 - d2))
    assert SFACE_DLIB.similarity(a, b) == pytest.approx(0.7 * cosine + 0.3 * (1 - distance), abs=1e-5)
    assert SFACE_DLIB.similarity(a, b) == pytest.approx(SFACE_DLIB.similarity(b, a), abs=1e-6)
    assert SFACE_DLIB.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        SFACE_DLIB.similarity(a[:128], b[:128])  # an SFace template is not a fused one


def test_combining_frames_renormalises_sfaces_part_only():
    rng = np.random.default_rng(1)
    frames = [_fused(rng.normal(size=128), 1.4 * np.ones(128) / np.sqrt(128) + 0.1 * i) for i in range(3)]
    combined = SFACE_DLIB.combine(frames)
    assert np.linalg.norm(combined[:128]) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(combined[128:], np.mean([f[128:] for f in frames], axis=0), rtol=1e-6)
    sface = SFACE.combine([f[:128] for f in frames])
    assert sface.shape == (128,) and np.linalg.norm(sface) == pytest.approx(1.0, abs=1e-5)


def test_templates_are_checked_against_their_model():
    rng = np.random.default_rng(2)
    good = _fused(rng.normal(size=128), rng.normal(size=128) * 0.12)
    assert SFACE_DLIB.check(good.astype("<f4").tobytes()).shape == (256,)
    for bad, why in [(good[:128], "size"), (np.concatenate([good[:128], np.zeros(128)]), "dlib norm"),
                     (np.concatenate([2 * good[:128], good[128:]]), "sface norm"),
                     (np.where(np.arange(256) == 200, np.nan, good), "nan")]:
        with pytest.raises(SecurityError) as e:
            SFACE_DLIB.check(bad.astype("<f4").tobytes())
        assert e.value.code == "template_invalid", why
    with pytest.raises(SecurityError):
        SFACE.check(good.astype("<f4").tobytes())  # a fused template under the SFace id


def test_model_ids_name_their_models_and_nothing_else():
    assert face_model_by_id(SFACE.model_id) is SFACE
    assert face_model_by_id(SFACE_DLIB.model_id) is SFACE_DLIB
    with pytest.raises(SecurityError) as e:
        face_model_by_id("arcface-r100")
    assert e.value.code == "template_invalid"


def test_a_matcher_uses_its_models_threshold_unless_given_one():
    assert FaceMatcher(SFACE_DLIB).threshold == SFACE_DLIB.threshold == 0.49
    assert FaceMatcher(SFACE_DLIB, 0.6).threshold == 0.6


def test_a_gate_reads_the_other_models_cards_on_sfaces_part_at_sfaces_threshold():
    """A fused gate scores a card enrolled on SFace alone by SFace on the first 128 values (and an SFace gate a
    fused card likewise), so a site can switch models without enrolling every holder again."""
    rng = np.random.default_rng(3)
    person, stranger = rng.normal(size=(2, 128))
    dlib = rng.normal(size=128) * 0.12
    probe = _fused(person + 0.2 * rng.normal(size=128), dlib)  # a fused gate's embedding of the holder
    sface_card = (person / np.linalg.norm(person)).astype(np.float32)

    fused_gate = FaceMatcher(SFACE_DLIB)
    assert fused_gate.for_template(SFACE_DLIB.model_id) is fused_gate
    reader = fused_gate.for_template(SFACE.model_id)
    assert reader.model is SFACE and reader.threshold == SFACE.threshold
    genuine = reader.score(probe, sface_card)
    assert genuine.similarity == pytest.approx(float(probe[:128] @ sface_card), abs=1e-5) and genuine.match
    assert not reader.score(probe, (stranger / np.linalg.norm(stranger)).astype(np.float32)).match
    assert FaceMatcher(SFACE_DLIB, 0.45, sface_threshold=0.56).for_template(SFACE.model_id).threshold == 0.56

    sface_gate = FaceMatcher(SFACE, 0.55)
    fused_card = _fused(person, dlib)
    reader = sface_gate.for_template(SFACE_DLIB.model_id)
    assert reader.model is SFACE and reader.threshold == 0.55  # the SFace gate's own threshold
    assert reader.score(probe[:128], fused_card).similarity == pytest.approx(genuine.similarity, abs=1e-5)

    with pytest.raises(SecurityError) as e:
        fused_gate.for_template("arcface-r100")
    assert e.value.code == "template_mismatch"


def _near(vector: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    noisy = vector + rng.normal(0, spread, vector.shape)
    return (noisy / np.linalg.norm(noisy)).astype(np.float32)


def test_an_enrollment_template_is_made_only_of_one_person():
    from edge.errors import FaceChangedError, NoFaceError

    rng = np.random.default_rng(3)
    child, guardian = (_near(np.zeros(SFACE.dim), rng, 1.0) for _ in range(2))
    matcher = FaceMatcher(SFACE)
    sitting = [_near(child, rng, 0.03) for _ in range(6)]
    template = matcher.enrollment_template(sitting)
    assert matcher.match(template, child).similarity > 0.95
    for turns in (sitting[:3] + [_near(guardian, rng, 0.03)] * 3, sitting[:5] + [guardian], [guardian] + sitting):
        with pytest.raises(FaceChangedError):
            matcher.enrollment_template(turns)
    with pytest.raises(NoFaceError):
        matcher.enrollment_template([])
