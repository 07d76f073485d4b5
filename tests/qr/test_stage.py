import cv2
import numpy as np
import pytest

from edge.qr.decoders import ZBarDecoder, ZXingDecoder
from edge.qr.stage import QRStage, to_grey
from edge.qr.synthetic import CATEGORIES, generate, qr_modules, render_symbol

TEXT = "EHC1:TEST PAYLOAD 0123456789 $%*+-./:"


@pytest.fixture(scope="module")
def stage():
    return QRStage()


def _frame(text=TEXT, module_px=4, pad=40):
    symbol = render_symbol(qr_modules(text), module_px)
    return cv2.copyMakeBorder(symbol, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)


def test_clean_code_bytes_text_corners(stage):
    frame = _frame()
    [code] = stage.decode(frame)
    assert code.text == TEXT and code.data == TEXT.encode()
    assert len(code.corners) == 4
    xs = [x for x, _ in code.corners]
    # The symbol (without quiet zone) starts at pad + 4 modules = 56 px.
    assert min(xs) == pytest.approx(56, abs=4) and max(xs) == pytest.approx(frame.shape[1] - 56, abs=4)


@pytest.mark.parametrize("frame", [
    None, np.zeros((0, 0), np.uint8), np.zeros((1, 1), np.uint8), np.zeros((5, 5, 7), np.uint8),
    np.random.default_rng(0).random((100, 120)), np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64), np.uint16),
    np.full((480, 640, 3), 255, np.uint8), np.zeros((2, 3, 4, 5), np.uint8), np.zeros((10, 10), np.bool_),
])
def test_odd_frames_never_crash(stage, frame):
    assert stage.decode(frame) == []


def test_colour_16bit_and_bgra_frames_decode(stage):
    grey = _frame()
    for frame in (cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGRA),
                  grey.astype(np.uint16) * 257):
        assert [c.text for c in stage.decode(frame)] == [TEXT]


def test_two_codes_in_one_frame(stage):
    a, b = _frame("EHC1:FIRST"), _frame("EHC1:SECOND CODE")
    h = max(a.shape[0], b.shape[0])
    both = np.hstack([cv2.copyMakeBorder(a, 0, h - a.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=255),
                      cv2.copyMakeBorder(b, 0, h - b.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=255)])
    assert sorted(c.text for c in stage.decode(both)) == ["EHC1:FIRST", "EHC1:SECOND CODE"]


def test_retry_corners_are_in_original_pixels():
    from edge.qr.types import QRCode

    class OnlyLargeImages:
        """Reads a 'code' only in images at least 200 px wide, at a fixed place in those pixels."""

        name = "fake"

        def decode(self, grey):
            if grey.shape[1] < 200:
                return []
            return [QRCode(b"X", "X", ((100.0, 60.0), (180.0, 60.0), (180.0, 140.0), (100.0, 140.0)), self.name)]

    stage = QRStage(decoders=[OnlyLargeImages()])
    [code] = stage.decode(np.zeros((120, 150), np.uint8))
    assert code.variant == "upscale2"
    assert code.corners[0] == (50.0, 30.0) and code.corners[2] == (90.0, 70.0)


def test_no_false_positive_on_face_photos(stage, testdata):
    from edge.imageio import load_image

    images = sorted((testdata / "faces").glob("*/*.jp*g")) + sorted((testdata / "faces").glob("*/*/*.jp*g"))
    assert len(images) >= 20
    for path in images:
        assert stage.decode(load_image(path)) == [], path


def test_budget_zero_means_first_pass_only():
    stage = QRStage(budget_ms=0.0)
    calls = []
    stage.variants = [("spy", lambda g: calls.append(1) or g, 1.0)]
    stage.decode(np.full((100, 100), 128, np.uint8))
    assert calls == []


@pytest.mark.slow
def test_stage_reads_at_least_what_each_decoder_reads(stage, testdata):
    decoders = [ZXingDecoder(), ZBarDecoder()]
    totals = {c: {"stage": 0, "zxing": 0, "zbar": 0} for c in CATEGORIES}
    for sample in generate(5, seed=11, data_dir=testdata):
        grey = to_grey(sample.frame)
        stage_hit = any(c.text == sample.text for c in stage.decode(sample.frame))
        totals[sample.category]["stage"] += stage_hit
        for decoder in decoders:
            hit = any(c.text == sample.text for c in decoder.decode(grey))
            totals[sample.category][decoder.name] += hit
            assert stage_hit or not hit, (sample.category, decoder.name)
    assert totals["clean"]["stage"] == 5
    assert sum(t["stage"] for t in totals.values()) > max(sum(t[d] for t in totals.values()) for d in ("zxing", "zbar"))


CHARSET_CASES = [
    ("UTF-8 ümlaut 日本", {"encoding": "utf-8"}),
    ("café ISO-8859-1", {"encoding": "iso-8859-1"}),
    ("日本語テキスト", {"encoding": "shift_jis"}),
    ("ｱｲｳ half-width kana", {"encoding": "shift_jis"}),
    ("日本語", {"mode": "kanji"}),
    ("Grüße €", {"encoding": "utf-8", "eci": True}),
    ("Ελληνικά", {"encoding": "iso-8859-7", "eci": True}),
]


@pytest.mark.parametrize(("text", "options"), CHARSET_CASES, ids=[o.get("mode") or o["encoding"] + ("+eci" if
                                                                   o.get("eci") else "") for _, o in CHARSET_CASES])
def test_text_comes_back_exactly_as_encoded(text, options):
    """Issue 14: the stage used to re-decode zxing's raw bytes as UTF-8 (Shift_JIS came out as mojibake)."""
    import io

    import segno

    buffer = io.BytesIO()
    segno.make(text, micro=False, **options).save(buffer, kind="png", scale=6, border=4)
    grey = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE)
    [code] = QRStage().decode(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert code.text == text
    if options.get("encoding") and not options.get("eci"):
        assert code.data == text.encode(options["encoding"])  # bytes_b64 keeps the raw payload
