"""How the device talks to the registry: one small interface, a gRPC implementation (mutual TLS), and an
in-memory one that calls a registry's storage directly (unit tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from edge.errors import RegistryUnavailable
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from edge.security.tls import CertificateLife, load_tls_files


@dataclass(frozen=True)
class IngestResult:
    token_id: str
    status: str  # "stored" | "duplicate" | "rejected"
    reason: str = ""


@dataclass(frozen=True)
class TemplateSync:
    """What a template sync brought: the registry's version of the site's templates; every template it sends
    this device, or None when the device's known version is still current; and the cards whose stored
    template it could not open (``withheld``: not ended, so the device keeps its copies)."""

    version: int
    templates: list[tuple[str, bytes, str]] | None
    withheld: frozenset[str] = frozenset()


class RegistryTransport(Protocol):
    def ingest(self, tokens: list[bytes]) -> list[IngestResult]: ...

    def trust_list(self, known_version: int = 0) -> tuple[int, str | None]:
        """(version, JSON), or (version, None) when ``known_version`` is still current."""
        ...

    def revocations(self, known_version: int = 0) -> tuple[int, str | None]:
        """(version, JSON), or (version, None) when ``known_version`` is still current."""
        ...

    def templates(self, device_id: str, known_version: int = 0) -> TemplateSync:
        """The site's templates for this device (``TemplateSync``); version 0: a registry that keeps none."""
        ...

    def store_template(self, card_id: str, sealed: bytes, model_id: str) -> bytes: ...


#: Templates asked for per SyncTemplates call: about 0.6 MB of SFace templates, 1.2 MB of fused ones.
TEMPLATE_PAGE = 1000
STATUS = {rpb.STORED: "stored", rpb.DUPLICATE: "duplicate", rpb.REJECTED: "rejected"}
UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
               grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED}


class GrpcTransport:
    """gRPC to the registry. ``tls`` = (ca, cert, key) files for mutual TLS, checked here (ConfigError
    ``tls_invalid`` names a damaged or mismatched file); ``identity`` is only sent in explicitly configured
    plaintext development mode."""

    def __init__(self, address: str, *, tls: tuple[Path, Path, Path] | None, identity: str = "",
                 server_name: str | None = None, timeout_s: float = 10.0) -> None:
        # gRPC's own reconnect back-off grows to 120 s by default: after an outage the device would notice
        # the registry's return minutes late. Our deliverer paces retries itself, so keep this one short.
        options: list[tuple[str, object]] = [("grpc.initial_reconnect_backoff_ms", 500),
                                             ("grpc.min_reconnect_backoff_ms", 500),
                                             ("grpc.max_reconnect_backoff_ms", 5000)]
        self.address = address
        self.tls_lives: tuple[CertificateLife, ...] = ()
        if tls is not None:
            files = load_tls_files(*tls, setting="registry.tls_dir", role="registry_client")
            credentials = files.channel_credentials()
            self.tls_lives = files.lives
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(address, credentials, options=options)
            self._metadata: tuple = ()
        else:
            self._channel = grpc.insecure_channel(address, options=options)
            self._metadata = (("x-edge-identity", identity),)
        self._stub = rpb_grpc.RegistryStub(self._channel)
        self.timeout_s = timeout_s

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code in UNAVAILABLE:
                raise RegistryUnavailable(f"registry unreachable: {code}: {exc.details()}") from exc
            raise RegistryUnavailable(f"registry refused {method}: {code}: {exc.details()}",
                                      code="registry_refused") from exc

    def ingest(self, tokens: list[bytes]) -> list[IngestResult]:
        reply = self._call("IngestTokens", rpb.IngestTokensRequest(tokens=tokens))
        return [IngestResult(r.token_id, STATUS.get(r.status, "rejected"), r.reason) for r in reply.results]  # type: ignore[attr-defined]

    def trust_list(self, known_version: int = 0) -> tuple[int, str | None]:
        return self._document("GetTrustList", known_version)

    def revocations(self, known_version: int = 0) -> tuple[int, str | None]:
        return self._document("GetRevocations", known_version)

    def _document(self, method: str, known_version: int) -> tuple[int, str | None]:
        doc: Any = self._call(method, rpb.DocumentRequest(known_version=known_version))
        return int(doc.version), None if doc.unchanged else doc.json

    def templates(self, device_id: str, known_version: int = 0) -> TemplateSync:
        """Every template the registry sends this device, fetched in pages of ``TEMPLATE_PAGE`` (one message
        holds about 6,600), with the version read for the first page; no list when ``known_version`` is still
        the registry's. A registry from before paging and versions ignores the fields and answers with all at
        once, version 0."""
        out: list[tuple[str, bytes, str]] = []
        withheld: set[str] = set()
        after = ""
        first: Any = None
        while True:
            reply: Any = self._call("SyncTemplates", rpb.SyncTemplatesRequest(
                device_id=device_id, after_card_id=after, limit=TEMPLATE_PAGE,
                known_version=known_version if first is None else 0))
            if first is None:
                first = reply
            if reply.unchanged:
                return TemplateSync(int(reply.version), None)
            out.extend((t.card_id, t.sealed_template, t.model_id) for t in reply.templates)
            withheld.update(reply.withheld_card_ids)
            if not reply.more:
                return TemplateSync(int(first.version), out, frozenset(withheld))
            last = max([t.card_id for t in reply.templates[-1:]] + list(reply.withheld_card_ids[-1:]), default="")
            if last <= after:  # a page that does not move on would loop for ever
                raise RegistryUnavailable(f"the registry's template pages stopped advancing at {after[:64]!r}",
                                          code="registry_refused")
            after = last

    def store_template(self, card_id: str, sealed: bytes, model_id: str) -> bytes:
        reply = self._call("StoreTemplate", rpb.StoreTemplateRequest(card_id=card_id, sealed_template=sealed,
                                                                     model_id=model_id))
        return reply.template_sha256  # type: ignore[attr-defined]

    def close(self) -> None:
        self._channel.close()
