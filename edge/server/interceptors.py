"""Server interceptors: request ids and structured access logs, per-method concurrency limits, and
translation of typed errors to status codes (edge.server.errors), applied to unary and streaming calls.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from edge.errors import EdgeError
from edge.log import request_id
from edge.server.errors import Busy, abort_with

log = logging.getLogger(__name__)


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


class EdgeInterceptor(grpc.ServerInterceptor):
    """Admission (RESOURCE_EXHAUSTED when a method is at its limit), request id, access log, error mapping."""

    EXEMPT = ("/grpc.health.v1.Health/", "/grpc.reflection.")

    def __init__(self, limits: dict[str, int], default_limit: int) -> None:
        self._limiter = _Limiter(limits, default_limit)

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(self.EXEMPT):
            return handler
        method = details.method
        metadata = dict(details.invocation_metadata or ())
        rid = str(metadata.get("x-request-id") or uuid.uuid4().hex[:16])
        semaphore = self._limiter.semaphore(method)

        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                return run(lambda: behaviour(request, context), context)

            def stream(request_iterator: Any, context: grpc.ServicerContext) -> Any:
                token = request_id.set(rid)
                admitted = semaphore.acquire(blocking=False)
                try:
                    if not admitted:
                        abort_with(context, Busy(f"{method} is at its concurrency limit; retry shortly"))
                    context.set_trailing_metadata((("x-request-id", rid),))
                    yield from behaviour(request_iterator, context)
                except EdgeError as exc:
                    abort_with(context, exc)
                finally:
                    if admitted:
                        semaphore.release()
                    request_id.reset(token)

            return stream if streaming else unary

        def run(call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
            token = request_id.set(rid)
            began = time.monotonic()
            admitted = semaphore.acquire(blocking=False)
            status = "OK"
            try:
                if not admitted:
                    status = "RESOURCE_EXHAUSTED"
                    abort_with(context, Busy(f"{method} is at its concurrency limit; retry shortly"))
                context.set_trailing_metadata((("x-request-id", rid),))
                return call()
            except EdgeError as exc:
                status = exc.code
                abort_with(context, exc)
            except Exception as exc:
                if context.code() is None and not isinstance(exc, grpc.RpcError):
                    status = "INTERNAL"
                    log.exception("unhandled error in %s", method)
                    abort_with(context, exc)
                raise
            finally:
                if admitted:
                    semaphore.release()
                log.info("rpc", extra={"fields": {"method": method, "status": status,
                                                  "ms": round((time.monotonic() - began) * 1000, 1)}})
                request_id.reset(token)

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(around(handler.unary_unary, False),
                                                       request_deserializer=handler.request_deserializer,
                                                       response_serializer=handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(around(handler.stream_stream, True),
                                                         request_deserializer=handler.request_deserializer,
                                                         response_serializer=handler.response_serializer)
        return handler
