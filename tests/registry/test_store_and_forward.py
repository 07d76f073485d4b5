"""Real processes on both backends: the registry goes down and comes back, the daemon is killed with
SIGKILL in the middle of delivery, and every token still ends up stored exactly once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edge.demo import HOLDER_PORTRAIT
from edge.imageio import load_image
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.registry_client.outbox import Outbox
from registry.storage import open_storage

from .conftest import device_channel, device_site

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout: float = 60, interval: float = 0.1, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(what)


@pytest.fixture
def site(tmp_path, db_url, pki, testdata, face_stage):
    """A running registry with a registered device, a card and its template; the device not started."""
    template = face_stage.embed_image(load_image(testdata / HOLDER_PORTRAIT)).vector.astype("<f4")
    site = device_site(tmp_path, db_url, pki, testdata, template, card_type="health_card",
                       server="caller_sessions_per_min = 600",
                       registry="server_name = \"registry\"\ndelivery_batch = 1\ndelivery_max_per_s = 4\n"
                                "delivery_max_backoff_s = 2")
    device = site.device(tmp_path)
    yield {"registry": site.registry, "device": device, "data": site.data, "db_url": db_url, "admin": site.admin,
           "card_id": site.card.card_id, "pki": pki}
    device.kill9()
    site.registry.stop()


def device_info(port: int, pki: Path) -> pb.DeviceInfo:
    with device_channel(port, pki) as channel:
        return pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)


def verify_n(port: int, n: int, pki: Path) -> list[str]:
    with device_channel(port, pki) as channel:
        stub = pb_grpc.VerificationServiceStub(channel)
        return [pb.Decision.Name(stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60).decision)
                for _ in range(n)]


def registry_token_ids(db_url: str) -> list[str]:
    storage = open_storage(db_url)
    try:
        return storage.token_ids()
    finally:
        storage.close()


def device_token_ids(data: Path) -> list[str]:
    outbox = Outbox(data / "outbox.sqlite")
    try:
        return sorted(r[0] for r in outbox._db.execute("SELECT token_id FROM tokens"))
    finally:
        outbox.close()


def test_outage_queues_then_delivers_exactly_once_even_through_kill9(site):
    registry, device = site["registry"], site["device"]
    port = device.start()
    wait_for(lambda: 0 <= device_info(port, site["pki"]).last_sync_age_s < 30, what="first sync")

    registry.kill9()  # the hospital network goes down
    assert verify_n(port, 8, site["pki"]) == ["ALLOW"] * 8  # verification continues from the cached data
    assert wait_for(lambda: device_info(port, site["pki"]).outbox_pending == 8, what="8 queued")
    assert registry_token_ids(site["db_url"]) == []

    registry.start()  # back: the device drains at 4 tokens/s, one per call
    wait_for(lambda: len(registry_token_ids(site["db_url"])) >= 2, interval=0.02, what="delivery started")
    device.kill9()  # in the middle of delivery
    delivered_at_kill = len(registry_token_ids(site["db_url"]))
    assert 2 <= delivered_at_kill < 8

    port = device.start()  # the queue survived SIGKILL; delivery resumes
    wait_for(lambda: device_info(port, site["pki"]).outbox_pending == 0, timeout=90, what="queue drained")
    stored = registry_token_ids(site["db_url"])
    assert sorted(stored) == device_token_ids(site["data"])  # nothing lost, nothing duplicated
    assert len(stored) == len(set(stored)) == 8
    history = site["admin"].AuditHistory(rpb.AuditHistoryRequest(card_id=site["card_id"]), timeout=10).entries
    assert len(history) == 8 and {e.device_id for e in history} == {"dev-a"}
    assert sorted(e.sequence for e in history) == list(range(1, 9))


def verify_once(port: int, pki: Path) -> tuple[str, list[str]]:
    with device_channel(port, pki) as channel:
        reply = pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
    return pb.Decision.Name(reply.decision), [pb.ReasonCode.Name(r) for r in reply.reasons]


def test_synced_trust_and_revocations_survive_a_restart_while_the_registry_is_down(site):
    """Finding 1: the synced lists lived only in memory while the sync time was on disk."""
    registry, device, pki = site["registry"], site["device"], site["pki"]
    port = device.start()
    wait_for(lambda: 0 <= device_info(port, pki).last_sync_age_s < 30, what="first sync")
    assert verify_once(port, pki) == ("ALLOW", ["OK"])

    registry.kill9()
    device.kill9()
    port = device.start()  # no local trust file: only what it synced and kept
    assert verify_once(port, pki) == ("ALLOW", ["OK"])  # before the fix: DENY CARD_SIGNATURE

    registry.start()
    site["admin"].RevokeCard(rpb.RevokeCardRequest(card_id=site["card_id"], reason="discharged"), timeout=10)
    wait_for(lambda: verify_once(port, pki) == ("DENY", ["CARD_REVOKED"]), timeout=30, interval=0.5,
             what="revocation synced")
    registry.kill9()
    device.kill9()
    port = device.start()
    assert verify_once(port, pki) == ("DENY", ["CARD_REVOKED"])  # before the fix: ALLOW
