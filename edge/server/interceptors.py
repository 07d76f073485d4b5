"""The daemon's one interceptor: who is calling, may they, can we take it, and what went wrong.

For every call, in order: the caller's identity and role (edge.security.identity: the mutual-TLS client
certificate, the unix socket's configured role, or everything in explicit plaintext development mode);
the method's required role (PERMISSION_DENIED otherwise); per-caller session rate (RESOURCE_EXHAUSTED);
per-method concurrency (RESOURCE_EXHAUSTED); then the request body is parsed here, not by grpcio, so a
body that is not valid protobuf is INVALID_ARGUMENT (grpcio's own path answers INTERNAL and, on grpcio
1.85, keeps ~19 kB per such request; see docs/SECURITY.md). Typed errors become status codes through
edge.server.errors; every call gets a request id (``x-request-id``) in its trailers and in the log line.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from edge.errors import EdgeError, SecurityError
from edge.log import request_id
from edge.security.identity import CONTROLLER, OPERATOR, Identity, identity_from_pem, peer_certificate
from edge.server.errors import Busy, InvalidRequest, abort_with

log = logging.getLogger(__name__)

#: Which roles may call what. A method not listed here is refused (new methods must be placed).
METHOD_ROLES: dict[str, frozenset[str]] = {
    "/edge.v1.VerificationService/Verify": frozenset({CONTROLLER, OPERATOR}),
    "/edge.v1.VerificationService/VerifySession": frozenset({CONTROLLER, OPERATOR}),
    "/edge.v1.VerificationService/Override": frozenset({CONTROLLER, OPERATOR}),
    "/edge.v1.VerificationService/RecordVaccination": frozenset({CONTROLLER, OPERATOR}),
    "/edge.v1.CardService/DecodeCard": frozenset({CONTROLLER, OPERATOR}),
    "/edge.v1.DeviceService/GetDeviceInfo": frozenset({CONTROLLER, OPERATOR}),
    "/edge.v1.EnrollmentService/Enroll": frozenset({OPERATOR}),
}
#: Open to any caller that passed the TLS handshake (or reached the unix socket).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SESSION_METHODS = ("/edge.v1.VerificationService/Verify", "/edge.v1.VerificationService/VerifySession",
                   "/edge.v1.VerificationService/Override")


class PermissionDenied(SecurityError):
    code = "permission_denied"


class _Limiter:
    def __init__(self, limits: dict[str, int], default: int) -> None:
        self._limits = limits
        self._default = default
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def semaphore(self, method: str) -> threading.BoundedSemaphore:
        with self._lock:
            if method not in self._semaphores:
                name = method.rsplit("/", 1)[-1]
                self._semaphores[method] = threading.BoundedSemaphore(self._limits.get(name, self._default))
            return self._semaphores[method]


class CallerBuckets:
    """A token bucket per caller: ``rate_per_min`` sessions a minute, bursts of ``burst``. Callers are few
    (the certificates a site issued), so the table stays small; it is still capped."""

    def __init__(self, rate_per_min: float, burst: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 max_callers: int = 1024) -> None:
        self.rate_s = rate_per_min / 60.0
        self.burst = burst
        self.clock = clock
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 when a session may start now, else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate_s)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                return (1.0 - tokens) / self.rate_s
            if len(self._buckets) >= self.max_callers and caller not in self._buckets:
                self._buckets.pop(next(iter(self._buckets)))
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0


class EdgeInterceptor(grpc.ServerInterceptor):
    def __init__(self, limits: dict[str, int], default_limit: int, *, plaintext: bool = False,
                 local_role: str = CONTROLLER, sessions_per_min: float = 30.0) -> None:
        self._limiter = _Limiter(limits, default_limit)
        self._plaintext = plaintext
        self._local_role = local_role
        self._buckets = CallerBuckets(sessions_per_min)
        self.on_failure: Callable[[str, str], None] = lambda method, code: None

    # -- identity ---------------------------------------------------------------------------------
    def identify(self, context: grpc.ServicerContext) -> Identity:
        pem = peer_certificate(context)
        if pem is not None:
            return identity_from_pem(pem)
        if context.peer().startswith("unix:"):
            return Identity("local", self._local_role, "unix")
        if self._plaintext:
            return Identity("plaintext:" + context.peer().rsplit(":", 1)[0], OPERATOR, "plaintext")
        raise PermissionDenied("no client certificate", code="unauthenticated")

    def _admit(self, method: str, context: grpc.ServicerContext) -> Identity | None:
        if method.startswith(OPEN_PREFIXES):
            return None
        who = self.identify(context)
        allowed = METHOD_ROLES.get(method, frozenset())
        if who.role not in allowed:
            raise PermissionDenied(f"{who.name} (role {who.role or 'none'}) may not call {method.rsplit('/', 1)[-1]}")
        if method in SESSION_METHODS:
            wait = self._buckets.take(who.name)
            if wait > 0:
                raise Busy(f"{who.name} starts sessions too fast; retry in {wait:.0f} s",
                           retry_after_ms=int(wait * 1000) + 1)
        return who

    # -- wiring -----------------------------------------------------------------------------------
    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        metadata = dict(details.invocation_metadata or ())
        supplied = str(metadata.get("x-request-id") or "")
        rid = supplied[:64] if supplied.isprintable() and supplied else uuid.uuid4().hex[:16]
        semaphore = self._limiter.semaphore(method)
        parse = handler.request_deserializer

        def decode(raw: bytes) -> Any:
            if parse is None:
                return raw
            try:
                return parse(raw)
            except (DecodeError, ValueError, RuntimeError) as exc:
                raise InvalidRequest(f"the request is not a valid {method.rsplit('/', 1)[-1]} message") from exc

        def enter(context: grpc.ServicerContext) -> None:
            """Identity, role and rate, then a concurrency slot (the caller releases it); raises to refuse."""
            context.set_trailing_metadata((("x-request-id", rid),))
            who = self._admit(method, context)
            if not semaphore.acquire(blocking=False):
                raise Busy(f"{method} is at its concurrency limit; retry shortly")
            if who is not None:
                context.edge_identity = who

        def unary(raw: bytes, context: grpc.ServicerContext) -> Any:
            token = request_id.set(rid)
            began = time.monotonic()
            status = "OK"
            admitted = False
            try:
                enter(context)
                admitted = True
                return handler.unary_unary(decode(raw), context)
            except EdgeError as exc:
                status = exc.code
                abort_with(context, exc, rid)
            except Exception as exc:
                if context.code() is None and not isinstance(exc, grpc.RpcError):
                    status = "internal"
                    log.exception("unhandled error in %s", method)
                    abort_with(context, exc, rid)
                raise
            finally:
                if admitted:
                    semaphore.release()
                if status != "OK":
                    self.on_failure(method, status)
                log.info("rpc", extra={"fields": {"method": method, "status": status,
                                                  "ms": round((time.monotonic() - began) * 1000, 1)}})
                request_id.reset(token)

        def stream(raw_iterator: Iterator[bytes], context: grpc.ServicerContext) -> Any:
            token = request_id.set(rid)
            admitted = False
            status = "OK"
            try:
                enter(context)
                admitted = True
                yield from handler.stream_stream((decode(raw) for raw in raw_iterator), context)
            except EdgeError as exc:
                status = exc.code
                abort_with(context, exc, rid)
            finally:
                if admitted:
                    semaphore.release()
                if status != "OK":
                    self.on_failure(method, status)
                request_id.reset(token)

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=None,
                                                       response_serializer=handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(stream, request_deserializer=None,
                                                         response_serializer=handler.response_serializer)
        return handler
