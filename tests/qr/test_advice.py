"""A card in view that does not scan gets a prompt a person can act on (issue 14)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.qr.advice import BRIGHTEN, CONTRAST, GLARE, CardAdvisor
from edge.qr.synthetic import qr_modules, render_symbol

SYMBOL = render_symbol(qr_modules("EHC1:" + "A" * 300), 4)


def phone(side: int = 300, dark: float = 0, light: float = 255, glare: bool = False) -> np.ndarray:
    """A grey 640x480 frame with the card's code on a screen of the given dark and light levels."""
    code = cv2.resize(SYMBOL, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255.0
    frame = np.full((480, 640), 128, np.float32)
    y, x = (480 - side) // 2, (640 - side) // 2
    frame[y:y + side, x:x + side] = dark + code * (light - dark)
    if glare:
        yy, xx = np.mgrid[0:480, 0:640]
        frame = frame + 400 * np.exp(-((xx - 320) ** 2 + (yy - 240) ** 2) / (2 * 80 ** 2))
    return frame.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(("frame", "advice"), [
    (phone(), None),  # a clean code needs no advice
    (phone(dark=0, light=50), BRIGHTEN),  # a dim screen
    (phone(dark=100, light=150), CONTRAST),  # a low-contrast "light" design, or dark mode washed out
    (phone(glare=True), GLARE),  # a ceiling light on the screen
    (np.full((480, 640), 128, np.uint8), None),  # no code in view at all
], ids=["clean", "dim", "low_contrast", "glare", "no_code"])
def test_the_advice_names_the_problem(frame, advice):
    assert CardAdvisor().advise(frame) == advice


def test_a_code_that_was_read_and_is_not_the_card_gets_no_advice():
    """A poster's code in view was read (and passed over: it is not a card). Advice about it ("hold the phone
    closer", for a small poster) would send the person after the wrong code."""
    from edge.qr.advice import CLOSER
    from edge.qr.stage import QRStage

    frame = np.full((480, 640), 128, np.uint8)
    symbol = render_symbol(qr_modules("https://hospital.example/wifi"), 3)  # 111 px with its quiet zone
    frame[40:40 + symbol.shape[0], 60:60 + symbol.shape[1]] = symbol
    [poster] = QRStage().decode(frame)
    advisor = CardAdvisor()
    assert advisor.advise(frame) == CLOSER
    assert advisor.advise(frame, read=[poster.corners]) is None
    assert advisor.advise(frame, read=[((600, 440), (630, 440), (630, 470), (600, 470))]) == CLOSER  # elsewhere
