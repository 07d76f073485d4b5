"""What the registry refuses, with a stable reason code: one base for the refusals of its parts (escort rules,
age bands, device registration), so that the gRPC layer maps them in one place (registry/service.py)."""

from __future__ import annotations


class Refused(Exception):
    """A refusal: ``code`` is the reason code callers receive in the ``edge-reason`` trailer, ``message`` the
    sentence. ``invalid_argument``: the request itself is wrong (INVALID_ARGUMENT), not the registry's state
    (FAILED_PRECONDITION)."""

    invalid_argument = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
