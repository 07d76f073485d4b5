"""The registry over mutual TLS on both storage backends: ingest rules, identity, templates, audit."""

from __future__ import annotations

import itertools
import os
import time

import grpc
import numpy as np
import pytest

from edge.errors import RegistryUnavailable
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from edge.registry_client.transport import GrpcTransport
from edge.security.clock import ClockGuard
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519, seal, unseal
from edge.security.tokens import TokenContent, TokenSigner

from .conftest import admin_stub, register

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tls_registry):
    return tls_registry


def device_transport(port, pki, name):
    return GrpcTransport(f"127.0.0.1:{port}", tls=(pki / "ca.pem", pki / f"{name}.pem", pki / f"{name}.key"),
                         server_name="registry")


CARD_1 = "c1" * 16
#: A device numbers its tokens in the order it makes them (the audit history sorts a second's tokens by it).
SEQUENCE = itertools.count(1)


def make_token(key: DeviceKey, device_id: str, *, now: float | None = None, card: str = CARD_1,
               site: str = "ward-7", claims: dict[int, object] | None = None) -> bytes:
    clock = ClockGuard(clock=lambda: now if now is not None else time.time())
    content = TokenContent(card_id=card, qr_text="EHC1:X", card_kid=b"k" * 8, nonce=os.urandom(16), decision="ALLOW",
                           reasons=["OK"], checks={}, site=site, gate="g1", revocation_version=1,
                           sequence=next(SEQUENCE), extra=claims or {})
    return TokenSigner(key, device_id, clock=clock).sign(content)[0]


def test_ingest_stores_once_and_rejects_with_reasons(registry, pki, tmp_path):
    state, port = registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    key_a = DeviceKey.load_or_create(tmp_path / "a")
    transport = device_transport(port, pki, "dev-a")

    good = make_token(key_a, "dev-a", card=CARD_1)
    forged = make_token(DeviceKey.load_or_create(tmp_path / "mallory"), "dev-a")  # right name, wrong key
    unregistered = make_token(DeviceKey.load_or_create(tmp_path / "u"), "dev-unregistered")
    stale = make_token(key_a, "dev-a", now=time.time() - 30 * 86400)
    future = make_token(key_a, "dev-a", now=time.time() + 3600)
    results = transport.ingest([good, good, forged, unregistered, stale, future, b"\x00garbage"])
    assert [(r.status, r.reason) for r in results] == [
        ("stored", ""), ("duplicate", ""), ("rejected", "unknown_key"), ("rejected", "unknown_device"),
        ("rejected", "stale_iat"), ("rejected", "stale_iat"), ("rejected", "malformed")]
    assert transport.ingest([good])[0].status == "duplicate"  # a replay later: still stored once
    assert state.storage.token_count() == 1
    history = admin.AuditHistory(rpb.AuditHistoryRequest(card_id=CARD_1), timeout=10).entries
    assert [(e.device_id, e.decision, e.gate) for e in history] == [("dev-a", "ALLOW", "g1")]
    # What the registry's metrics say about it (registry/metrics.py): per device, outcome and reason, so a
    # gate delivering far above its usual rate (a compromised one floods with signed tokens) can be alerted on.
    import urllib.request

    metrics_port = state.metrics.serve("127.0.0.1:0")
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert 'registry_tokens_total{device="dev-a",outcome="stored",reason=""} 1.0' in text
    assert 'registry_tokens_total{device="dev-a",outcome="duplicate",reason=""} 2.0' in text
    assert 'registry_tokens_total{device="dev-a",outcome="rejected",reason="stale_iat"} 2.0' in text
    assert "registry_database_up 1.0" in text and CARD_1 not in text


def test_a_devices_tokens_are_capped_per_day_they_were_signed_not_per_day_they_arrive(registry, pki, tmp_path):
    """A compromised gate flooding the registry with tokens it signs itself is capped (device_rate), on both
    storage backends; a backlog after an outage is not: its tokens count on the days they were signed."""
    state, port = registry
    state.max_tokens_per_device_day = 3
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    register(admin, "dev-b", tmp_path / "b", "ward-7")
    key_a = DeviceKey.load_or_create(tmp_path / "a")
    transport = device_transport(port, pki, "dev-a")
    noon = (int(time.time()) // 86400) * 86400 + 43200 - 86400 * 2  # two days ago, at noon UTC
    backlog = [make_token(key_a, "dev-a", now=noon + i) for i in range(3)]
    backlog += [make_token(key_a, "dev-a", now=noon + 86400 + i) for i in range(3)]
    assert [r.status for r in transport.ingest(backlog)] == ["stored"] * 6  # two days of a queued outage
    flood = [make_token(key_a, "dev-a", now=time.time() - i) for i in range(5)]
    results = transport.ingest(flood[:2]) + transport.ingest(flood[2:])
    assert [(r.status, r.reason) for r in results] == [("stored", "")] * 3 + [("rejected", "device_rate")] * 2
    assert transport.ingest(flood[:1])[0].status == "duplicate"  # what was stored stays answerable
    token_b = make_token(DeviceKey.load_or_create(tmp_path / "b"), "dev-b")  # another gate is not held back
    assert device_transport(port, pki, "dev-b").ingest([token_b])[0].status == "stored"
    assert state.storage.token_count() == 10


def test_a_call_full_of_rejected_tokens_is_one_log_line_not_one_per_token(registry, pki, tmp_path, caplog):
    """A device sending junk wrote one warning per token: 500 a call, and under journald's rate limit the
    registry's other lines (a database down, a device over its cap) were dropped with them."""
    import logging

    state, port = registry
    register(admin_stub(port, pki), "dev-a", tmp_path / "a", "ward-7")
    forged = [make_token(DeviceKey.load_or_create(tmp_path / "mallory"), "dev-a") for _ in range(3)]
    junk = [b"\x00garbage" + bytes([i]) for i in range(50)]
    with caplog.at_level(logging.WARNING, logger="registry.service"):
        results = device_transport(port, pki, "dev-a").ingest(junk + forged)
    assert [r.reason for r in results] == ["malformed"] * 50 + ["unknown_key"] * 3
    lines = [r for r in caplog.records if r.name == "registry.service"]
    assert len(lines) == 1 and lines[0].fields["reasons"] == {"malformed": 50, "unknown_key": 3}
    assert len(lines[0].fields["token_ids"]) == 5


def test_a_device_cannot_deliver_another_devices_tokens(registry, pki, tmp_path):
    _, port = registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    register(admin, "dev-b", tmp_path / "b", "ward-7")
    token_a = make_token(DeviceKey.load_or_create(tmp_path / "a"), "dev-a")
    [result] = device_transport(port, pki, "dev-b").ingest([token_a])
    assert (result.status, result.reason) == ("rejected", "wrong_device")


def test_mutual_tls_is_required(registry, pki, tmp_path):
    _, port = registry
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as e:  # no TLS
        rpb_grpc.RegistryStub(channel).GetTrustList(rpb.DocumentRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes())  # server-auth only, no client cert
    options = [("grpc.ssl_target_name_override", "registry")]
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel, pytest.raises(grpc.RpcError):
        rpb_grpc.RegistryStub(channel).GetTrustList(rpb.DocumentRequest(), timeout=5)
    # A valid certificate of a device the registry does not know.
    with pytest.raises(Exception) as e2:
        device_transport(port, pki, "dev-unregistered").trust_list()
    assert "not a registered device" in str(e2.value)
    # Devices cannot call admin methods.
    register(admin_stub(port, pki), "dev-a", tmp_path / "a", "ward-7")
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "dev-a.key").read_bytes(),
                                         (pki / "dev-a.pem").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel, \
            pytest.raises(grpc.RpcError) as e3:
        rpb_grpc.RegistryStub(channel).AuditHistory(rpb.AuditHistoryRequest(card_id="x"), timeout=5)
    assert e3.value.code() == grpc.StatusCode.PERMISSION_DENIED


def unit_template(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype("<f4")
    return (vector / np.linalg.norm(vector)).astype("<f4")


def issue_for(admin, template: np.ndarray, site: str = "ward-7", model_id: str = "sface-2021dec-fp32") -> str:
    import hashlib

    card = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site=site, model_id=model_id,
                                                template_sha256=hashlib.sha256(template.tobytes()).digest()),
                           timeout=10)
    assert card.qr_text.startswith("EHC1:") and len(card.card_id) == 32
    return card.card_id


def test_templates_travel_sealed_and_only_to_the_site(registry, pki, tmp_path):
    import hashlib

    state, port = registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    register(admin, "dev-b", tmp_path / "b", "ward-9")
    template = unit_template(1)
    card_id = issue_for(admin, template)
    sealed = seal(state.template_public_key, template.tobytes(), card_id.encode())
    transport_a = device_transport(port, pki, "dev-a")
    commitment = transport_a.store_template(card_id, sealed, "sface-2021dec-fp32")
    assert commitment == hashlib.sha256(template.tobytes()).digest()
    [(synced_id, sealed_for_a, _)] = transport_a.templates("dev-a").templates
    assert synced_id == card_id and template.tobytes() not in sealed_for_a
    opened = unseal(load_or_create_x25519(tmp_path / "a"), sealed_for_a, card_id.encode())
    assert opened == template.tobytes()
    assert device_transport(port, pki, "dev-b").templates("dev-b").templates == []  # another site gets nothing


def test_the_registry_deletes_the_template_of_a_card_that_ended(registry, pki, tmp_path):
    """The registry holds templates sealed to its own key; it keeps one only while its card lives: a revoked
    card's goes at the revocation, an expired card's at the next template sync."""
    import hashlib

    state, port = registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    transport = device_transport(port, pki, "dev-a")
    cards = {}
    for name, seed, valid in (("kept", 21, 0), ("revoked", 22, 0), ("expiring", 23, 2)):
        template = unit_template(seed)
        card = admin.IssueCard(rpb.IssueCardRequest(
            card_type="health_card", site="ward-7", model_id="sface-2021dec-fp32", valid_for_s=valid,
            template_sha256=hashlib.sha256(template.tobytes()).digest()), timeout=10)
        transport.store_template(card.card_id, seal(state.template_public_key, template.tobytes(),
                                                    card.card_id.encode()), "sface-2021dec-fp32")
        cards[name] = card.card_id
    assert state.storage.template_count() == 3
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=cards["revoked"]), timeout=10)
    assert state.storage.template_count() == 2
    time.sleep(2.5)
    assert [card for card, _, _ in transport.templates("dev-a").templates] == [cards["kept"]]
    assert state.storage.template_count() == 1
    with pytest.raises(RegistryUnavailable) as refused:  # and none can be stored for it again
        transport.store_template(cards["revoked"], seal(state.template_public_key, unit_template(22).tobytes(),
                                                        cards["revoked"].encode()), "sface-2021dec-fp32")
    assert "revoked or has expired" in str(refused.value.message)
    assert state.storage.template_count() == 1
