"""The one mapping from our typed errors to gRPC status codes.

The status message is the error's message; trailing metadata carries ``edge-reason`` (the stable reason
code) and, for RESOURCE_EXHAUSTED, ``retry-after-ms``. Anything not an EdgeError is INTERNAL with a
generic message (details stay in the device log, under the request id).
"""

from __future__ import annotations

import grpc

from edge.errors import (
    CameraError,
    ConfigError,
    CredentialError,
    EdgeError,
    FaceError,
    ImageError,
    ModelError,
    RegistryUnavailable,
    SecurityError,
    StorageError,
)


class InvalidRequest(EdgeError):
    code = "invalid_request"


class Busy(EdgeError):
    """Too many calls of one kind at once, or the camera stayed busy; ``retry_after_ms`` advises when."""

    code = "busy"

    def __init__(self, message: str, *, retry_after_ms: int = 500) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class DeadlineExceeded(EdgeError):
    code = "deadline_exceeded"


class OverrideRefused(EdgeError):
    """A staff override that refers to no refusal of this device, or to one already overridden."""

    code = "override_unknown"


def status_for(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, InvalidRequest | ImageError | CredentialError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, Busy):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, DeadlineExceeded):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(error, CameraError | RegistryUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, ModelError | ConfigError | StorageError | OverrideRefused | FaceError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, SecurityError):
        if error.code in ("unauthenticated", "identity_ambiguous", "identity_invalid"):
            return grpc.StatusCode.UNAUTHENTICATED
        if error.code == "permission_denied":
            return grpc.StatusCode.PERMISSION_DENIED
        if error.code in ("template_missing",):
            return grpc.StatusCode.NOT_FOUND
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def abort_with(context: grpc.ServicerContext, error: BaseException, rid: str | None = None) -> None:
    """Abort the RPC with the mapped status (raises, as grpc's abort does); ``rid`` goes in the trailers."""
    code = status_for(error)
    metadata: list[tuple[str, str]] = [("x-request-id", rid)] if rid else []
    if isinstance(error, EdgeError):
        metadata.append(("edge-reason", error.code))
        message = error.message
    else:
        message = "internal error"
    if isinstance(error, Busy):
        metadata.append(("retry-after-ms", str(error.retry_after_ms)))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(code, message)
