from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QRCode:
    """One decoded QR code.

    ``data`` is the payload bytes, ``text`` its text (UTF-8, undecodable bytes replaced), ``corners`` the
    four corners in frame pixels (clockwise from the top-left of the symbol as decoded), ``decoder`` the
    decoder that read it and ``variant`` the preprocessing that made it readable ("original" if none).
    """

    data: bytes
    text: str
    corners: tuple[tuple[float, float], ...]
    decoder: str
    variant: str = "original"
