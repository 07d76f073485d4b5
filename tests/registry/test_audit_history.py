"""A card's audit history in pages (AuditHistory limit/after; `edge registry audit` follows them): the whole
history in one message stopped at gRPC's 4 MiB (about 35,000 entries, years of daily use of one card), after
which the card's history could not be read at all."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest

from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from registry.storage import TokenRow

from .conftest import admin_stub

pytestmark = pytest.mark.slow
CARD = "c1" * 16


def rows(count: int, card: str = CARD, reason_bytes: int = 0) -> list[TokenRow]:
    """``count`` tokens of three devices, several in the same second; ``reason_bytes`` pads each entry so that
    fewer entries than a real 35,000 reach the message limit."""
    padding = ["X" * reason_bytes] if reason_bytes else []
    return [TokenRow(token_id=f"{i:032x}", device_id=f"dev-{i % 3}", card_id=card, iat=1_800_000_000 + i // 4,
                     decision="ALLOW", reasons=["OK", *padding], sequence=i // 3, site="ward-7", gate="g",
                     token=b"t%d" % i) for i in range(count)]


def test_a_history_larger_than_one_message_is_read_whole_in_order(tls_registry, pki):
    state, port = tls_registry
    state.storage.store_tokens(rows(4600, reason_bytes=1000))  # 4.6 MB of entries
    state.storage.store_tokens(rows(5, card="c2" * 16))
    admin = admin_stub(port, pki)
    with pytest.raises(grpc.RpcError) as e:  # the whole history at once is what failed before paging
        admin.AuditHistory(rpb.AuditHistoryRequest(card_id=CARD), timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    audit = subprocess.run([sys.executable, "-m", "edge", "registry", "audit", CARD, "--json", "--address",
                            f"127.0.0.1:{port}", "--tls-dir", str(pki)], capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stderr
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    assert len(entries) == 4600 and len({e["token_id"] for e in entries}) == 4600
    keys = [(e["iat"], e["device_id"], e["sequence"], e["token_id"]) for e in entries]
    assert keys == sorted(keys)


def test_pages_and_their_bounds(tls_registry, pki):
    state, port = tls_registry
    state.storage.store_tokens(rows(25))
    admin = admin_stub(port, pki)
    assert len(admin.AuditHistory(rpb.AuditHistoryRequest(card_id=CARD), timeout=10).entries) == 25  # limit 0
    seen, after, pages = [], "", 0
    while True:
        page = admin.AuditHistory(rpb.AuditHistoryRequest(card_id=CARD, limit=10, after=after), timeout=10)
        seen += [e.token_id for e in page.entries]
        pages += 1
        after = page.next_page
        if not after:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 25
    exact = admin.AuditHistory(rpb.AuditHistoryRequest(card_id=CARD, limit=25), timeout=10)
    assert len(exact.entries) == 25 and exact.next_page == ""  # a full last page says there is no other
    for bad in ("not json", "[1, 2]", '["x", "dev-0", 1, "t"]'):
        with pytest.raises(grpc.RpcError) as e:
            admin.AuditHistory(rpb.AuditHistoryRequest(card_id=CARD, limit=10, after=bad), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def old_rows(count: int, days_ago: float, card: str = CARD) -> list[TokenRow]:
    iat = int(time.time() - days_ago * 86400)
    return [TokenRow(token_id=f"{days_ago:>08.1f}{i:024x}".replace(".", "0"), device_id="dev-0", card_id=card,
                     iat=iat + i, decision="ALLOW", reasons=["OK"], sequence=i, site="ward-7", gate="g",
                     token=b"old%d" % i) for i in range(count)]


def test_tokens_leave_after_the_retention_and_recorded_vaccinations_stay(tls_registry):
    """Every verification (who passed which gate, when) was kept at the registry for good; a site now keeps
    them `--keep-days` (730 by default). A vaccination record is a medical record and stays."""
    state, _ = tls_registry
    storage = state.storage
    vaccination = old_rows(1, 800, card="c3" * 16)[0]
    vaccination = TokenRow(**{**vaccination.__dict__, "token_id": "ff" * 16, "reasons": ["VACCINATION_RECORD"],
                              "record": {"holder": "ab" * 16, "resource": {"resourceType": "Immunization"}}})
    storage.store_tokens([*old_rows(30, 800), vaccination, *old_rows(20, 10)])
    assert storage.token_count() == 51
    assert storage.prune_records(int(time.time() - 730 * 86400), chunk=7) == {"tokens": 31, "admissions": 0}
    assert storage.token_count() == 20 and len(storage.history(CARD)) == 20
    assert storage.immunization_for("c3" * 16) is not None  # the FHIR record stands alone
    assert storage.prune_records(int(time.time() - 730 * 86400))["tokens"] == 0


def test_the_registry_applies_its_retention_when_it_starts(tmp_path):
    from registry.storage import open_storage

    from .conftest import Process

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    storage = open_storage(url)
    storage.store_tokens([*old_rows(5, 40), *old_rows(3, 2)])
    storage.close()
    registry = Process(["registry", "serve", "--plaintext", "--db", url, "--state", str(tmp_path / "state"),
                        "--address", "127.0.0.1:0", "--keep-days", "30"], tmp_path / "port", tmp_path / "log")
    registry.start()
    try:
        deadline = time.time() + 30
        while "records past the retention deleted" not in (tmp_path / "log").read_text() and time.time() < deadline:
            time.sleep(0.1)
        storage = open_storage(url)
        assert storage.token_count() == 3
        storage.close()
    finally:
        registry.stop()


def test_a_discharged_admission_leaves_after_the_retention_with_its_permits(tls_registry):
    """A pseudonymous patient's stay on a ward (which ward: health data) was kept for good after discharge."""
    from registry.storage import Admission

    state, _ = tls_registry
    storage = state.storage
    day = 86400.0
    now = time.time()
    storage.put_admission(Admission(patient_id="p-old", site="s", ward="oncology", admitted=now - 900 * day,
                                    expected_until=now - 890 * day, discharged=now - 890 * day))
    storage.put_admission(Admission(patient_id="p-recent", site="s", ward="icu", admitted=now - 20 * day,
                                    expected_until=now - 10 * day, discharged=now - 10 * day))
    storage.put_admission(Admission(patient_id="p-here", site="s", ward="icu", admitted=now - 900 * day,
                                    expected_until=now + day, discharged=None))  # a long stay, still admitted
    storage.put_permit("aa" * 16, "p-old", "s", "oncology", now - 900 * day, now - 890 * day)
    storage.end_permit("aa" * 16, "discharge", now - 890 * day)
    storage.put_permit("bb" * 16, "p-here", "s", "icu", now - 2 * day, now + day)
    assert storage.prune_records(int(now - 730 * day)) == {"tokens": 0, "admissions": 1}
    assert storage.admission("p-old") is None
    assert storage._execute("SELECT COUNT(*) FROM permits WHERE patient_id = ?", ("p-old",)).fetchone()[0] == 0
    assert storage.admission("p-recent") is not None and storage.admission("p-here") is not None
    assert storage.active_permits("p-here", now) == ["bb" * 16]
