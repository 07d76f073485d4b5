"""Thin servicers: validate the request, call the daemon's components, build the reply."""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import grpc
import numpy as np

from edge import __version__
from edge.config import config_to_dict
from edge.credential.verifier import CardVerifier
from edge.errors import CredentialError, SecurityError
from edge.pipeline import CARD_REASONS, Outcome
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.identity import OPERATOR
from edge.security.sealing import raw_public, seal
from edge.security.templates import template_digest
from edge.server.errors import DeadlineExceeded, InvalidRequest
from edge.vision.matcher import FaceMatcher


class Daemon(Protocol):
    """What the servicers need of the daemon (edge.server.daemon.EdgeDaemon); no import of it here."""

    config: Any
    model_id: str
    matcher: FaceMatcher
    certificates: tuple[Any, ...]  # edge.security.tls.CertificateLife of each certificate loaded

    def run_session(self, **kwargs: object) -> Outcome: ...

    def run_override(self, *, refused_token_id: str, refused_card_id: str, reason: str,
                     **kwargs: object) -> Outcome: ...

    def record_vaccination(self, record: dict[str, Any]) -> tuple[str, bytes]: ...

    def capture_embeddings(self, frames: int, deadline: float | None) -> list[np.ndarray]: ...

    @property
    def templates(self) -> Any: ...

    @property
    def outbox(self) -> Any: ...

    @property
    def key(self) -> Any: ...

    @property
    def enc_key(self) -> Any: ...

    @property
    def clock(self) -> Any: ...

    @property
    def syncer(self) -> Any: ...

    @property
    def deliverer(self) -> Any: ...

log = logging.getLogger(__name__)
MAX_CARD_TEXT = 4296


def validate_verify(request: pb.VerifyRequest) -> None:
    if not 8 <= len(request.nonce) <= 64:
        raise InvalidRequest(f"nonce must be 8..64 bytes, got {len(request.nonce)}")
    if len(request.card_text) > MAX_CARD_TEXT or len(request.delegation_text) > MAX_CARD_TEXT:
        raise InvalidRequest(f"card_text and delegation_text are at most {MAX_CARD_TEXT} characters")
    if len(request.gate_id) > 128 or len(request.request_id) > 128:
        raise InvalidRequest("gate_id and request_id are at most 128 characters")


def to_response(outcome: Outcome, request_id: str) -> pb.VerifyResponse:
    return pb.VerifyResponse(
        request_id=request_id, decision=pb.Decision.Value(outcome.decision),
        reasons=[pb.ReasonCode.Value(r) for r in outcome.reasons], messages=outcome.messages, token=outcome.token,
        token_id=outcome.token_id, card_id=outcome.card_id, match_score=outcome.match_score,
        match_threshold=outcome.match_threshold, liveness_score=outcome.liveness_score,
        timings=[pb.StageTiming(stage=k, ms=v) for k, v in outcome.timings.items()], prompts=outcome.prompts)


def rpc_deadline(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return time.monotonic() + remaining if remaining is not None else None


def _role(context: grpc.ServicerContext) -> str | None:
    identity = getattr(context, "edge_identity", None)
    return identity.role if identity is not None else None


class VerificationServicer(pb_grpc.VerificationServiceServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _run(self, request: pb.VerifyRequest, context: grpc.ServicerContext, on_event: Any = None,
             cancelled: Any = None) -> pb.VerifyResponse:
        validate_verify(request)
        gate = self.daemon.config.site.gate_id
        if request.gate_id and request.gate_id != gate:
            # A controller wired to another gate's device would open its own door for a person this camera saw.
            raise SecurityError(f"this device is gate {gate!r}, the request is for gate {request.gate_id!r}",
                                code="wrong_gate")
        deadline = rpc_deadline(context)
        outcome = self.daemon.run_session(nonce=request.nonce, card_text=request.card_text or None,
                                          delegation_text=request.delegation_text or None,
                                          deadline=deadline, on_event=on_event,
                                          cancelled=cancelled or (lambda: not context.is_active()))
        if outcome.reasons == ["TIME_BUDGET"] and deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded("the call's deadline passed before the session finished")
        return to_response(outcome, request.request_id)

    def _first_message(self, request_iterator: Iterator[pb.SessionClientMessage]) -> pb.SessionClientMessage | None:
        """The stream's first message within ``server.stream_idle_s``: a stream that never starts must not
        hold a concurrency slot (the reader thread ends when the aborted call closes its iterator)."""
        box: queue.Queue[Any] = queue.Queue(1)

        def read() -> None:
            try:
                box.put(next(request_iterator, None))
            except Exception as exc:  # the client went away
                box.put(exc)

        threading.Thread(target=read, name="edge-stream-start", daemon=True).start()
        idle = self.daemon.config.server.stream_idle_s
        try:
            first = box.get(timeout=idle)
        except queue.Empty:
            raise DeadlineExceeded(f"no `start` message within {idle:g} s", code="stream_idle") from None
        if isinstance(first, Exception):
            raise InvalidRequest("the stream ended before `start`")
        return first

    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        return self._run(request, context)

    def Override(self, request: pb.OverrideRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        if not 8 <= len(request.nonce) <= 64:
            raise InvalidRequest(f"nonce must be 8..64 bytes, got {len(request.nonce)}")
        if len(request.staff_card_text) > MAX_CARD_TEXT or len(request.reason) > 64 or \
                len(request.refused_token_id) > 64 or len(request.refused_card_id) > 64:
            raise InvalidRequest("a field of the override request is too long")
        deadline = rpc_deadline(context)
        outcome = self.daemon.run_override(
            refused_token_id=request.refused_token_id, refused_card_id=request.refused_card_id, reason=request.reason,
            nonce=request.nonce, card_text=request.staff_card_text or None, deadline=deadline,
            cancelled=lambda: not context.is_active())
        return to_response(outcome, request.request_id)

    def RecordVaccination(self, request: pb.VaccinationRecordRequest,
                          context: grpc.ServicerContext) -> pb.VaccinationRecordResponse:
        fields = (request.verification_token_id, request.vaccine_code, request.lot_number, request.expiry,
                  request.route, request.body_site, request.performer_staff_id)
        if any(len(f) > 128 for f in fields):
            raise InvalidRequest("a field of the vaccination record is too long")
        record = {"verification": request.verification_token_id, "vaccine": request.vaccine_code,
                  "lot": request.lot_number, "expiry": request.expiry, "dose": int(request.dose_number),
                  "series": int(request.series_doses), "route": request.route, "site": request.body_site,
                  "performer": request.performer_staff_id, "occurred": int(request.occurred_at or time.time())}
        record_id, token = self.daemon.record_vaccination(record)
        return pb.VaccinationRecordResponse(request_id=request.request_id, record_id=record_id, token=token)

    def VerifySession(self, request_iterator: Iterator[pb.SessionClientMessage],
                      context: grpc.ServicerContext) -> Iterator[pb.SessionServerMessage]:
        first = self._first_message(request_iterator)
        if first is None or first.WhichOneof("kind") != "start":
            raise InvalidRequest("the first session message must be `start`")
        events: queue.Queue[pb.SessionServerMessage | None] = queue.Queue()
        cancel = threading.Event()

        def watch_client() -> None:
            try:
                for message in request_iterator:
                    if message.WhichOneof("kind") == "cancel":
                        cancel.set()
            except grpc.RpcError:
                cancel.set()

        def on_event(kind: str, text: str) -> None:
            if kind == "prompt":
                events.put(pb.SessionServerMessage(prompt=text))
            else:
                events.put(pb.SessionServerMessage(progress=pb.Progress(stage=kind, message=text)))

        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["response"] = self._run(first.start, context, on_event,
                                               lambda: cancel.is_set() or not context.is_active())
            except BaseException as exc:  # re-raised on the RPC thread below
                result["error"] = exc
            finally:
                events.put(None)

        threading.Thread(target=watch_client, daemon=True).start()
        # With this call's context, so the session's logs carry its request id as a unary call's do.
        worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
        worker.start()
        while (message := events.get()) is not None:
            yield message
        worker.join()
        if "error" in result:
            raise result["error"]
        yield pb.SessionServerMessage(result=result["response"])


class CardServicer(pb_grpc.CardServiceServicer):
    def __init__(self, verifier: CardVerifier) -> None:
        self.verifier = verifier

    def DecodeCard(self, request: pb.DecodeCardRequest, context: grpc.ServicerContext) -> pb.DecodeCardResponse:
        if not request.card_text or len(request.card_text) > MAX_CARD_TEXT:
            raise InvalidRequest("card_text must be 1..4296 characters")
        try:
            card = self.verifier.verify(request.card_text)
        except CredentialError as exc:
            reason = CARD_REASONS.get(exc.code, "CARD_INVALID")
            return pb.DecodeCardResponse(valid=False, reason=pb.ReasonCode.Value(reason), message=exc.message)
        return pb.DecodeCardResponse(valid=True, reason=pb.OK, message="card verified", card_id=card.card_id.hex(),
                                     card_type=card.card_type, site=card.scope.site, expires_at=card.expires_at)


class EnrollmentServicer(pb_grpc.EnrollmentServiceServicer):
    """Capture a holder's face on the device and keep the template here (encrypted); return its digest.

    The sealed template for the registry comes with the registry issue (encryption to the registry's
    key); until then ``sealed_template`` is empty and the template never leaves the device.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def Enroll(self, request: pb.EnrollRequest, context: grpc.ServicerContext) -> pb.EnrollResponse:
        try:
            card_id = bytes.fromhex(request.card_id)
        except ValueError:
            raise InvalidRequest("card_id must be hex") from None
        if len(card_id) != 16:
            raise InvalidRequest("card_id must be 16 bytes (32 hex characters)")
        frames = request.frames or 10
        if not 1 <= frames <= 100:
            raise InvalidRequest("frames must be 1..100")
        template = self.daemon.matcher.enrollment_template(self.daemon.capture_embeddings(frames,
                                                                                        rpc_deadline(context)))
        self.daemon.templates.put(request.card_id, template, self.daemon.model_id)
        sealed = b""
        registry_key = self.daemon.config.registry.public_key
        if registry_key:  # the only form in which a template ever leaves: sealed to the registry
            sealed = seal(bytes.fromhex(registry_key), template.astype("<f4").tobytes(), request.card_id.encode())
        return pb.EnrollResponse(card_id=request.card_id, template_sha256=template_digest(template).hex(),
                                 model_id=self.daemon.model_id, sealed_template=sealed)


class DeviceServicer(pb_grpc.DeviceServiceServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def GetDeviceInfo(self, request: pb.DeviceInfoRequest, context: grpc.ServicerContext) -> pb.DeviceInfo:
        d = self.daemon
        trusted, _ = d.clock.trusted()
        first = min(d.certificates, key=lambda life: life.not_after, default=None)
        return pb.DeviceInfo(device_id=d.config.device.id, key_id=d.key.key_id.hex(), public_key=d.key.public_raw,
                             site=d.config.site.id, gate_id=d.config.site.gate_id, version=__version__,
                             clock_trusted=trusted, templates=d.templates.count(),
                             outbox_pending=d.outbox.pending_count(), outbox_rejected=d.outbox.rejected_count(),
                             last_sync_age_s=d.syncer.age_s() if d.syncer else -1.0,
                             delivery_error=d.deliverer.stats.last_error if d.deliverer and
                             d.deliverer.stats.failures and d.deliverer.stats.last_success < time.time() - 5 else "",
                             encryption_key=raw_public(d.enc_key.public_key()),
                             tls_expires_at=first.not_after if first else 0.0,
                             tls_expires_certificate=first.role if first else "",
                             config_json=json.dumps(config_to_dict(d.config), sort_keys=True)
                             if _role(context) == OPERATOR else "")


__all__ = ["CardServicer", "DeviceServicer", "EnrollmentServicer", "VerificationServicer"]
