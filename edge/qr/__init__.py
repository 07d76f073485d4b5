"""QR stage: decode QR codes from camera frames with several decoders and preprocessing retries."""

from edge.qr.types import QRCode

__all__ = ["QRCode"]
