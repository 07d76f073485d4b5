"""A stand-in for pykms (Raspberry Pi OS's python3-kms++ DRM display binding): picamera2 imports it for its
DRM preview, which a gate never uses; only the names it reads at import must exist."""

import enum


class PixelFormat(enum.Enum):
    RGB888, BGR888, XRGB8888, XBGR8888, YUV420, YVU420, NV12, YUYV, YVYU = range(9)
