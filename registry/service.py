"""The registry's gRPC service and server.

Identity comes from mutual TLS: the client certificate's CN is the caller (a registered device id, or
"admin"). With ``allow_plaintext`` (local development only, never the default) the caller is read from
the ``x-edge-identity`` metadata instead, and the server logs that it is insecure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge.credential.issuer import CardIssuer
from edge.credential.keys import generate_issuer_key, load_private_pem, private_pem
from edge.credential.trust import RevocationList, TrustList
from edge.errors import SecurityError
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from edge.security.keys import write_secret
from edge.security.sealing import load_or_create_x25519, raw_public, seal, unseal
from registry.ingest import ingest_batch
from registry.storage import DeviceRecord, Storage

log = logging.getLogger(__name__)
ADMIN = "admin"
MAX_BATCH = 500


@dataclass
class RegistryState:
    """Everything the service needs: storage, the card issuer, the registry's template key."""

    storage: Storage
    issuer: CardIssuer
    state_dir: Path
    max_token_age_s: int = 14 * 86400

    @classmethod
    def open(cls, storage: Storage, state_dir: Path, issuer_name: str = "central-registry") -> RegistryState:
        state_dir.mkdir(parents=True, exist_ok=True)
        key_path = state_dir / "issuer_key.pem"
        if not key_path.exists():
            write_secret(key_path, private_pem(generate_issuer_key("ES256")))
        key = load_private_pem(key_path.read_bytes())
        state = cls(storage, CardIssuer(key, issuer_name), state_dir)
        if storage.document("trust_list") is None:
            trust = TrustList(version=1)
            trust.add(issuer_name, key.public_key())
            storage.put_document("trust_list", 1, json.dumps(trust.to_json()))
        if storage.document("revocations") is None:
            storage.put_document("revocations", 1, json.dumps(RevocationList(version=1).to_json()))
        load_or_create_x25519(state_dir, "template_key.pem")
        return state

    @property
    def template_public_key(self) -> bytes:
        return raw_public(load_or_create_x25519(self.state_dir, "template_key.pem").public_key())

    def revoke(self, card_id: bytes) -> int:
        version, body = self.storage.document("revocations") or (0, json.dumps(RevocationList().to_json()))
        revocations = RevocationList.from_json(json.loads(body))
        revocations.revoke(card_id)
        revocations.version = version + 1
        self.storage.put_document("revocations", revocations.version, json.dumps(revocations.to_json()))
        return revocations.version


def caller(context: grpc.ServicerContext, allow_plaintext: bool) -> str | None:
    names = context.auth_context().get("x509_common_name")
    if names:
        return names[0].decode()
    if allow_plaintext:
        return dict(context.invocation_metadata()).get("x-edge-identity")
    return None


class RegistryServicer(rpb_grpc.RegistryServicer):
    def __init__(self, state: RegistryState, *, allow_plaintext: bool = False) -> None:
        self.state = state
        self.allow_plaintext = allow_plaintext

    def _require(self, context: grpc.ServicerContext, *, admin: bool = False) -> str:
        who = caller(context, self.allow_plaintext)
        if who is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
            raise AssertionError("abort raises")
        if admin and who != ADMIN:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "admin only")
        if not admin and who != ADMIN and self.state.storage.device(who) is None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{who} is not a registered device")
        return str(who)

    def RegisterDevice(self, request, context):
        self._require(context, admin=True)
        if len(request.signing_key) != 32 or len(request.encryption_key) != 32 or not request.device_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "device_id, 32-byte signing and encryption keys needed")
        self.state.storage.register_device(DeviceRecord(request.device_id, request.signing_key,
                                                        request.encryption_key, request.site))
        return rpb.RegisterDeviceResponse(key_id=hashlib.sha256(request.signing_key).digest()[:8].hex())

    def IssueCard(self, request, context):
        self._require(context, admin=True)
        try:
            text, card = self.state.issuer.issue(
                card_type=request.card_type, holder=request.holder or os.urandom(16), site=request.site,
                ward=request.ward or None, station=request.station or None,
                valid_for_s=request.valid_for_s or 365 * 86400, template_sha256=request.template_sha256,
                model_id=request.model_id or "sface-2021dec-fp32")
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return rpb.IssueCardResponse(card_id=card.card_id.hex(), qr_text=text)

    def StoreTemplate(self, request, context):
        who = self._require(context)
        device = self.state.storage.device(who)
        key = load_or_create_x25519(self.state.state_dir, "template_key.pem")
        try:
            template = unseal(key, request.sealed_template, request.card_id.encode())
        except SecurityError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        commitment = hashlib.sha256(template).digest()
        site = device.site if device else "*"
        self.state.storage.put_template(request.card_id, request.sealed_template, request.model_id, commitment, site)
        return rpb.StoreTemplateResponse(template_sha256=commitment)

    def SyncTemplates(self, request, context):
        who = self._require(context)
        device = self.state.storage.device(request.device_id or who)
        if device is None or (who != ADMIN and device.device_id != who):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "a device syncs its own templates only")
            raise AssertionError("abort raises")
        key = load_or_create_x25519(self.state.state_dir, "template_key.pem")
        out = []
        for card_id, sealed, model_id in self.state.storage.templates_for_site(device.site):
            template = unseal(key, sealed, card_id.encode())
            out.append(rpb.SealedTemplate(card_id=card_id, model_id=model_id,
                                          sealed_template=seal(device.encryption_key, template, card_id.encode())))
        return rpb.SyncTemplatesResponse(templates=out)

    def _document(self, name: str) -> rpb.Document:
        version, body = self.state.storage.document(name) or (0, "{}")
        return rpb.Document(version=version, json=body)

    def GetTrustList(self, request, context):
        self._require(context)
        return self._document("trust_list")

    def GetRevocations(self, request, context):
        self._require(context)
        return self._document("revocations")

    def IngestTokens(self, request, context):
        who = self._require(context)
        if len(request.tokens) > MAX_BATCH:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_BATCH} tokens per call")
        results = []
        outcomes = ingest_batch(self.state.storage, list(request.tokens), peer_device=None if who == ADMIN else who,
                                max_age_s=self.state.max_token_age_s)
        for outcome in outcomes:
            status = {"stored": rpb.STORED, "duplicate": rpb.DUPLICATE}.get(outcome.status, rpb.REJECTED)
            if outcome.status == "rejected":
                log.warning("token rejected", extra={"fields": {"device": who, "token_id": outcome.token_id,
                                                                 "reason": outcome.reason}})
            results.append(rpb.IngestResult(token_id=outcome.token_id, status=status, reason=outcome.reason))
        return rpb.IngestTokensResponse(results=results)

    def AuditHistory(self, request, context):
        self._require(context, admin=True)
        entries = [rpb.AuditEntry(token_id=t.token_id, device_id=t.device_id, iat=t.iat, decision=t.decision,
                                  reasons=t.reasons, sequence=t.sequence, site=t.site, gate=t.gate)
                   for t in self.state.storage.history(request.card_id)]
        return rpb.AuditHistoryResponse(entries=entries)


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, folder: Path, name: str) -> TLSFiles:
        return cls(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key")


class RegistryServer:
    def __init__(self, state: RegistryState, *, tls: TLSFiles | None, allow_plaintext: bool = False) -> None:
        if tls is None and not allow_plaintext:
            raise ValueError("the registry needs TLS files, or allow_plaintext for local development")
        self.state = state
        self.tls = tls
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        rpb_grpc.add_RegistryServicer_to_server(RegistryServicer(state, allow_plaintext=tls is None), self.server)
        self.port: int | None = None

    def start(self, address: str = "127.0.0.1:0") -> int:
        if self.tls is not None:
            credentials = grpc.ssl_server_credentials(
                [(self.tls.key.read_bytes(), self.tls.cert.read_bytes())], root_certificates=self.tls.ca.read_bytes(),
                require_client_auth=True)
            self.port = self.server.add_secure_port(address, credentials)
        else:
            log.warning("registry running WITHOUT TLS (development only)")
            self.port = self.server.add_insecure_port(address)
        self.server.start()
        return self.port

    def stop(self, grace: float = 2.0) -> None:
        self.server.stop(grace).wait()
        self.state.storage.close()


def device_record_for(device_id: str, signing_key: ed25519.Ed25519PublicKey | bytes, encryption_key: bytes,
                      site: str) -> DeviceRecord:
    raw = signing_key if isinstance(signing_key, bytes) else signing_key.public_bytes_raw()
    return DeviceRecord(device_id, raw, encryption_key, site)
