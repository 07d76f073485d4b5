"""One error hierarchy for the whole service.

Every failure the service can report is an :class:`EdgeError` subclass with a stable, machine-readable
``code`` (the reason code that reaches CLI JSON output and gRPC status details). Third-party exceptions
are translated where they enter our code (``raise ... from exc``) so callers only ever catch these::

    EdgeError
    ├── ConfigError              config_invalid
    ├── ModelError               model_missing, model_corrupt, model_runtime
    ├── ImageError               image_unreadable, image_empty, image_too_large, image_unsupported
    ├── FaceError
    │   ├── NoFaceError          no_face
    │   └── FaceQualityError     face_quality
    ├── CameraError              camera_unavailable, camera_failed
    ├── QRError                  qr_decoder_unavailable, qr_not_found
    ├── CredentialError          card_* (prefix, base45, zlib, cbor, cose, kid, signature, expired, ...)
    ├── LivenessError            liveness_*
    ├── SecurityError            clock_untrusted, key_*, template_*, token_*, permission_denied, ...
    ├── StorageError             storage_corrupt, storage_unwritable, storage_newer
    └── RegistryUnavailable      registry_unavailable

The exit code of the CLI and the gRPC status are derived from the class (see ``edge.cli.main`` and
``edge.server.errors``), never from the message text.
"""

from __future__ import annotations

from typing import Any


class EdgeError(Exception):
    """Base of every error the service reports; ``code`` is the stable reason code."""

    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class ConfigError(EdgeError):
    """A configuration file or value is invalid; the message names the key."""

    code = "config_invalid"


class ModelError(EdgeError):
    """A model file is missing, altered, or cannot run."""

    code = "model_missing"


class ImageError(EdgeError):
    """An input image cannot be used (unreadable, empty, too large, unsupported)."""

    code = "image_unreadable"


class FaceError(EdgeError):
    code = "face_error"


class NoFaceError(FaceError):
    code = "no_face"


class FaceChangedError(FaceError):
    """Frames meant to show one person show more than one (people took turns in front of the camera)."""

    code = "face_changed"


class FaceQualityError(FaceError):
    """A face was found but is too small, blurred, turned away or badly lit; ``reasons`` lists why."""

    code = "face_quality"


class CameraError(EdgeError):
    code = "camera_failed"


class QRError(EdgeError):
    code = "qr_error"


class CredentialError(EdgeError):
    """A card payload failed parsing or verification; ``code`` says which check (``card_expired``...)."""

    code = "card_invalid"


class LivenessError(EdgeError):
    code = "liveness_failed"


class SecurityError(EdgeError):
    code = "security_error"


class StorageError(EdgeError):
    """A device database or state file is corrupt, cannot be written, or is from a newer release; the
    message names the file."""

    code = "storage_corrupt"


class RegistryUnavailable(EdgeError):
    code = "registry_unavailable"
