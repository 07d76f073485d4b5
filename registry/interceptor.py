"""The registry's last word on an error its handlers did not expect.

gRPC answers an uncaught exception with UNKNOWN and the exception's text ("Exception calling application:
..."): a database's message, a host name, a path, sent to every device and admin tool that called. Here the
full error goes to the log with a request id, and the caller gets that id and a status it can act on:
UNAVAILABLE when the database cannot be reached (the devices retry that, as they do a registry that is
down), INTERNAL otherwise. Refusals the handlers made themselves (``context.abort``) pass unchanged.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)


def _database_unreachable(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # SQLite only
        return isinstance(exc, sqlite3.OperationalError)
    return isinstance(exc, (psycopg.OperationalError, sqlite3.OperationalError))


class ErrorInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary
        method = handler_call_details.method

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behaviour(request, context)
            except Exception as exc:
                if context.code() not in (None, grpc.StatusCode.OK):
                    raise  # the handler's own refusal (context.abort)
                request_id = uuid.uuid4().hex[:12]
                unreachable = _database_unreachable(exc)
                log.exception("registry call failed", extra={"fields": {
                    "method": method, "request_id": request_id, "database_unreachable": unreachable}})
                context.set_trailing_metadata((("x-request-id", request_id),))
                if unreachable:
                    context.abort(grpc.StatusCode.UNAVAILABLE, f"the registry's database is unreachable; try again "
                                                               f"(request {request_id})")
                context.abort(grpc.StatusCode.INTERNAL, f"registry internal error (request {request_id})")
                raise AssertionError("abort raises") from exc

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
