import numpy as np
import pytest

from edge.vision.align import TEMPLATE
from edge.vision.embedder import FaceEmbedder, l2_normalise
from edge.vision.matcher import SFACE, FaceMatcher, cosine_similarity
from edge.vision.quality import QualityLimits, assess_quality, estimate_pose
from edge.vision.types import Face


def test_l2_normalise():
    v = l2_normalise(np.array([3.0, 4.0]))
    np.testing.assert_allclose(v, [0.6, 0.8])
    assert np.all(l2_normalise(np.zeros(3)) == 0)


def test_cosine_and_matcher():
    assert cosine_similarity([1, 0], [0, 1]) == pytest.approx(0.0)
    assert cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine_similarity([0, 0], [1, 0]) == 0.0
    m = FaceMatcher(SFACE, 0.5)
    x, y = np.eye(128, dtype=np.float32)[:2]
    assert m.match(x, x).match
    assert not m.match(x, y).match
    assert FaceMatcher(SFACE).threshold == SFACE.threshold
    with pytest.raises(ValueError):
        cosine_similarity([1, 0], [1, 0, 0])
    with pytest.raises(ValueError):
        m.match(np.array([1.0, 0.0]), np.array([1.0, 0.0]))  # not an SFace template
    with pytest.raises(ValueError):
        FaceMatcher(SFACE, 2.0)


class _Backend:
    input_name = "data"

    def __init__(self):
        self.tensors = []

    def run(self, tensor):
        self.tensors.append(tensor)
        # A deterministic "embedding": mean of each channel, padded.
        return [np.concatenate([tensor.mean(axis=(2, 3)).reshape(-1), np.ones(125)])[None]]


def test_embedder_channel_order_and_normalisation():
    crop = np.zeros((112, 112, 3), np.uint8)
    crop[..., 0] = 10  # blue
    crop[..., 2] = 200  # red
    backend = _Backend()
    vec = FaceEmbedder(backend, channel_order="rgb").embed(crop)
    assert backend.tensors[0][0, 0, 0, 0] == 200  # red first
    assert np.linalg.norm(vec) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        FaceEmbedder(backend).embed(np.zeros((100, 100, 3), np.uint8))


def test_flip_fusion_runs_mirror():
    backend = _Backend()
    FaceEmbedder(backend, flip_fusion=True).embed(np.zeros((112, 112, 3), np.uint8))
    assert len(backend.tensors) == 2


def test_pose_of_template_is_frontal():
    yaw, pitch = estimate_pose(TEMPLATE)
    assert abs(yaw) < 2 and abs(pitch) < 2


def test_pose_detects_turned_face():
    turned = TEMPLATE.copy()
    turned[2, 0] += 15  # nose far towards one eye
    yaw, _ = estimate_pose(turned)
    assert yaw > 35


def test_quality_reasons():
    face = Face(box=(0, 0, 10, 10), landmarks=(TEMPLATE * 0.1).astype(np.float32), score=0.9)
    dark_flat = np.full((112, 112, 3), 5, np.uint8)
    q = assess_quality(face, dark_flat, QualityLimits())
    assert set(q.reasons) == {"face_too_small", "face_blurred", "face_too_dark"}
    rng = np.random.default_rng(0)
    textured = rng.integers(60, 200, (112, 112, 3), dtype=np.uint8)
    good = Face(box=(0, 0, 100, 100), landmarks=TEMPLATE.astype(np.float32), score=0.9)
    assert assess_quality(good, textured).ok
