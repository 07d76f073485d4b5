import cv2
import numpy as np
import pytest

from edge.vision.detector import FaceDetector, decode, iou_one_to_many, nms, padded_size


def _outputs(width, height, hits):
    """YuNet-shaped outputs (cls, obj, bbox, kps per stride) with chosen anchors switched on."""
    cls, obj, bbox, kps = [], [], [], []
    for stride in (8, 16, 32):
        n = (width // stride) * (height // stride)
        cls.append(np.zeros((1, n, 1), np.float32))
        obj.append(np.zeros((1, n, 1), np.float32))
        bbox.append(np.zeros((1, n, 4), np.float32))
        kps.append(np.zeros((1, n, 10), np.float32))
    for (stride_index, index, score, box, lm) in hits:
        cls[stride_index][0, index, 0] = score
        obj[stride_index][0, index, 0] = score
        bbox[stride_index][0, index] = box
        kps[stride_index][0, index] = lm
    return cls + obj + bbox + kps


def test_padded_size_rounds_up_to_32():
    assert padded_size(640, 480) == (640, 480)
    assert padded_size(641, 1) == (672, 32)


def test_decode_matches_hand_computation():
    # 64x32 input; stride 16 grid is 4 cols x 2 rows; anchor index 5 = row 1, col 1.
    lm = np.array([0.5, 0.25] * 5, np.float32)
    outputs = _outputs(64, 32, [(1, 5, 0.81, [0.5, 0.25, np.log(2.0), np.log(3.0)], lm)])
    rows = decode(outputs, 64, 32, score_threshold=0.5)
    assert rows.shape == (1, 15)
    cx, cy, w, h = (1 + 0.5) * 16, (1 + 0.25) * 16, 2.0 * 16, 3.0 * 16
    np.testing.assert_allclose(rows[0, :4], [cx - w / 2, cy - h / 2, w, h], rtol=1e-5)
    np.testing.assert_allclose(rows[0, 4:6], [(0.5 + 1) * 16, (0.25 + 1) * 16], rtol=1e-5)
    assert rows[0, 14] == pytest.approx(0.81)  # sqrt(cls * obj)


def test_decode_threshold_and_clipping():
    outputs = _outputs(32, 32, [(0, 0, 0.4, [0, 0, 0, 0], np.zeros(10)), (0, 1, 1.7, [0, 0, 0, 0], np.zeros(10))])
    rows = decode(outputs, 32, 32, score_threshold=0.5)
    assert rows.shape[0] == 1 and rows[0, 14] == pytest.approx(1.0)  # clipped to [0, 1]


def test_nms_agrees_with_opencv():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (200, 2))
    wh = rng.uniform(10, 80, (200, 2))
    boxes = np.hstack([xy, wh]).astype(np.float32)
    scores = rng.uniform(0, 1, 200).astype(np.float32)
    ours = nms(boxes, scores, 0.3)
    theirs = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, 0.3)
    assert sorted(ours) == sorted(np.array(theirs).reshape(-1).tolist())


def test_iou():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]], np.float32)
    np.testing.assert_allclose(iou_one_to_many(boxes[0], boxes), [1.0, 50 / 150, 0.0])


class _FakeBackend:
    """Records the tensor it gets and answers one face at a known place (network pixels)."""

    input_name = "input"

    def __init__(self):
        self.seen = None

    def run(self, tensor):
        self.seen = tensor
        h, w = tensor.shape[2:]
        lm = np.array([0.25, 0.25, 0.75, 0.25, 0.5, 0.5, 0.3, 0.75, 0.7, 0.75], np.float32)
        return _outputs(w, h, [(2, 0, 0.95, [0.5, 0.5, 0.0, 0.0], lm)])


def test_large_frame_is_downscaled_and_coordinates_mapped_back():
    backend = _FakeBackend()
    detector = FaceDetector(backend, max_side=640)
    frame = np.zeros((1500, 2000, 3), np.uint8)
    faces = detector.detect(frame)
    assert backend.seen.shape == (1, 3, 480, 640)  # 2000x1500 -> 640x480, already multiples of 32
    scale = 640 / 2000
    assert faces[0].box[2] == pytest.approx(32 / scale, rel=1e-4)  # exp(0) * stride 32, mapped back
    assert faces[0].landmarks[0][0] == pytest.approx(0.25 * 32 / scale, rel=1e-4)


def test_small_frame_is_padded_not_resized():
    backend = _FakeBackend()
    detector = FaceDetector(backend)
    frame = np.full((100, 150, 3), 7, np.uint8)
    detector.detect(frame)
    assert backend.seen.shape == (1, 3, 128, 160)
    assert backend.seen[0, 0, 99, 149] == 7 and backend.seen[0, 0, 100, 150] == 0  # raw BGR, zero pad


def test_retry_at_a_larger_size_only_when_nothing_is_found():
    class Counting(_FakeBackend):
        def __init__(self, answer_from_width):
            super().__init__()
            self.widths = []
            self.answer_from_width = answer_from_width

        def run(self, tensor):
            self.widths.append(tensor.shape[3])
            if tensor.shape[3] >= self.answer_from_width:
                return super().run(tensor)
            return _outputs(tensor.shape[3], tensor.shape[2], [])

    backend = Counting(answer_from_width=1000)
    faces = FaceDetector(backend, max_side=640, retry_max_side=1600).detect(np.zeros((1500, 2000, 3), np.uint8))
    assert backend.widths == [640, 1600] and len(faces) == 1
    backend = Counting(answer_from_width=0)
    FaceDetector(backend, max_side=640).detect(np.zeros((1500, 2000, 3), np.uint8))
    assert backend.widths == [640]  # found at once: no retry


def test_the_retry_pass_runs_on_its_own_backend_when_given():
    """A batch command's first pass keeps an arena; the rare large retry must not run there and grow it."""
    first, retry = _FakeBackend(), _FakeBackend()
    first.run = lambda tensor: (setattr(first, "seen", tensor), _outputs(tensor.shape[3], tensor.shape[2], []))[1]
    faces = FaceDetector(first, max_side=640, retry_max_side=1600, retry_backend=retry).detect(
        np.zeros((1500, 2000, 3), np.uint8))
    assert first.seen.shape[3] == 640 and retry.seen.shape[3] == 1600 and len(faces) == 1
