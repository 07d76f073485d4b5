"""The device's registry client against a real registry server (in-process, mutual TLS, SQLite):
a sync round that one bad template cannot stop, a version that never goes backwards, and tokens whose
time the registry refused kept for retry instead of parked for good."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import replace

import numpy as np
import pytest

from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier
from edge.errors import SecurityError
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.registry_client.delivery import Deliverer
from edge.registry_client.outbox import Outbox
from edge.registry_client.state import SyncedState, SyncedStateFile
from edge.registry_client.sync import Syncer
from edge.registry_client.transport import GrpcTransport
from edge.security.clock import ClockGuard
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519, seal
from edge.security.templates import TemplateStore
from edge.security.tokens import TokenContent, TokenSigner
from registry.service import RegistryServer, RegistryState, TLSFiles
from registry.storage import SQLiteStorage
from tests.registry.conftest import admin_stub, pki, register  # noqa: F401 - pki is a fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path, pki):  # noqa: F811 - the fixture imported above
    state = RegistryState.open(SQLiteStorage(tmp_path / "registry.sqlite"), tmp_path / "state")
    server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    port = server.start("127.0.0.1:0")
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "device" / "keys", "ward-7")
    transport = GrpcTransport(f"127.0.0.1:{port}", tls=(pki / "ca.pem", pki / "dev-a.pem", pki / "dev-a.key"),
                              server_name="registry")
    yield state, admin, transport
    transport.close()
    server.stop(0.5)


def enrolled_card(state, admin, seed: int, valid_for_s: int = 0) -> str:
    vector = np.random.default_rng(seed).normal(size=128).astype("<f4")
    vector = (vector / np.linalg.norm(vector)).astype("<f4")
    card = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", model_id="sface-2021dec-fp32",
                                                template_sha256=hashlib.sha256(vector.tobytes()).digest(),
                                                valid_for_s=valid_for_s), timeout=10)
    state.storage.put_template(card.card_id, seal(state.template_public_key, vector.tobytes(),
                                                  card.card_id.encode()), "sface-2021dec-fp32",
                               hashlib.sha256(vector.tobytes()).digest(), "ward-7")
    return card.card_id


class CorruptOne:
    """The real transport, with one template's sealed bytes damaged on the way (a bad record, a bad hop)."""

    def __init__(self, transport, card_id):
        self.transport, self.card_id = transport, card_id

    def __getattr__(self, name):
        return getattr(self.transport, name)

    def templates(self, device_id, known_version=0):
        synced = self.transport.templates(device_id, known_version)
        out = []
        for card_id, sealed, model in synced.templates or []:
            if card_id == self.card_id:
                sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
            out.append((card_id, sealed, model))
        return replace(synced, templates=out if synced.templates is not None else None)


def make_syncer(tmp_path, transport):
    keys = tmp_path / "device" / "keys"
    verifier = CardVerifier(TrustList(), site="ward-7")
    templates = TemplateStore(tmp_path / "device" / "templates.sqlite", keys)
    return Syncer(transport, device_id="dev-a", verifier=verifier, templates=templates,
                  enc_key=load_or_create_x25519(keys), state_dir=tmp_path / "device"), verifier, templates


def test_one_bad_template_is_skipped_and_the_revocations_still_arrive(tmp_path, registry):
    state, admin, transport = registry
    good, bad, planted = enrolled_card(state, admin, 1), enrolled_card(state, admin, 2), "ab" * 16
    # A record from before validation: 3 bytes, which used to fail every device's whole sync round.
    state.storage.put_template(planted, seal(state.template_public_key, b"\x00\x01\x02", planted.encode()), "sface",
                               b"\x00" * 32, "ward-7")
    revoked = enrolled_card(state, admin, 3)
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=revoked), timeout=10)
    syncer, verifier, templates = make_syncer(tmp_path, CorruptOne(transport, bad))
    report = syncer.sync_once()
    # The planted record is dropped by the registry; the damaged one by the device: both reported, neither fatal.
    # The revoked card's template is not sent at all.
    assert report.templates == 1 and report.skipped == [(bad, "template_corrupt")]
    assert good != bad
    assert verifier.revocations.is_revoked(bytes.fromhex(revoked))
    assert templates.count() == 1 and templates.has(good) and syncer.age_s() < 5
    templates.close()


def test_a_board_that_cannot_open_any_template_logs_one_line_a_sync_not_one_per_template(tmp_path, registry,
                                                                                         caplog):
    """A board whose keys were made again (its data folder lost) cannot open a template sealed to its old key:
    every template failed, every sync (each minute, in full, since a skipped one is asked for again), one
    error line each: 7,000 holders, 10 million lines a day on the SD card, and journald's rate limit then
    dropped the daemon's other lines."""
    state, admin, transport = registry
    for seed in range(12):
        enrolled_card(state, admin, 100 + seed)
    verifier = CardVerifier(TrustList(), site="ward-7")
    templates = TemplateStore(tmp_path / "device" / "templates.sqlite", tmp_path / "device" / "keys")
    syncer = Syncer(transport, device_id="dev-a", verifier=verifier, templates=templates,
                    enc_key=load_or_create_x25519(tmp_path / "remade-keys"), state_dir=tmp_path / "device")
    with caplog.at_level("ERROR", logger="edge.registry_client.sync"):
        report = syncer.sync_once()
    assert len(report.skipped) == 12 and templates.count() == 0
    lines = [r for r in caplog.records if r.name == "edge.registry_client.sync"]
    assert len(lines) == 1 and lines[0].fields["skipped"] == 12 and len(lines[0].fields["card_ids"]) == 5
    templates.close()


def test_a_restart_reloads_what_was_applied_and_versions_never_go_back(tmp_path, registry):
    state, admin, transport = registry
    revoked = enrolled_card(state, admin, 4)
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=revoked), timeout=10)
    syncer, _, templates = make_syncer(tmp_path, transport)
    syncer.sync_once()
    templates.close()
    again, verifier, templates = make_syncer(tmp_path, transport)  # a restart: no registry call yet
    assert verifier.revocations.is_revoked(bytes.fromhex(revoked)) and len(verifier.trust.by_kid) == 1
    assert 0 <= again.age_s() < 5
    # A registry (or an attacker in its place) that serves an older revocation list is refused.
    older = RevocationList(version=verifier.revocations.version - 1)
    state.storage.put_document("revocations", older.version, json.dumps(older.to_json()))
    with pytest.raises(SecurityError) as e:
        again.sync_once()
    assert e.value.code == "sync_rollback" and verifier.revocations.is_revoked(bytes.fromhex(revoked))
    templates.close()


def test_a_damaged_state_file_is_a_typed_error_not_a_silent_fallback(tmp_path):
    from edge.errors import ConfigError

    store = SyncedStateFile(tmp_path)
    store.save(SyncedState(TrustList(version=3), RevocationList(version=2), time.time()), None)
    assert store.load().revocations.version == 2
    store.path.write_text('{"format": 1, "trust_list": ')
    with pytest.raises(ConfigError):
        store.load()


def test_tokens_refused_for_their_time_are_kept_and_retried(tmp_path, registry):
    state, _, transport = registry
    state.max_token_age_s = 86400  # the registry's window (its clock or its setting is what is wrong)
    key = DeviceKey.load_or_create(tmp_path / "device" / "keys")
    signer = TokenSigner(key, "dev-a", clock=ClockGuard(clock=lambda: time.time() - 2 * 86400))
    outbox = Outbox(tmp_path / "device" / "outbox.sqlite")
    content = TokenContent(card_id="cd" * 16, qr_text="EHC1:X", card_kid=b"k" * 8, nonce=b"n" * 16,
                           decision="ALLOW", reasons=["OK"], checks={}, site="ward-7", gate="g", revocation_version=1,
                           sequence=1)
    outbox.issue(lambda seq: signer.sign(content))
    deliverer = Deliverer(outbox, transport, clock_retry_s=0.1)
    deliverer.run_once()
    assert outbox.pending_count() == 1 and outbox.rejected_count() == 0  # kept, not parked
    assert deliverer.stats.clock_rejections == 1
    state.max_token_age_s = 14 * 86400  # the clock/setting is corrected
    time.sleep(0.15)
    deliverer.run_once()
    assert outbox.pending_count() == 0 and state.storage.token_count() == 1
    outbox.close()


def test_a_revoked_or_expired_card_s_template_leaves_every_gate(tmp_path, registry):
    """Data minimisation for biometric data: the registry stops sending the template of a card that is revoked
    or has expired, and the device deletes it on the next sync, as it deletes a revoked card's template it
    enrolled itself. A template enrolled on the device and not (yet) at the registry stays."""
    state, admin, transport = registry
    kept, revoked = enrolled_card(state, admin, 11), enrolled_card(state, admin, 12)
    expiring = enrolled_card(state, admin, 13, valid_for_s=2)
    syncer, _, templates = make_syncer(tmp_path, transport)
    local = np.random.default_rng(14).normal(size=128).astype("<f4")
    local = (local / np.linalg.norm(local)).astype("<f4")
    local_id, local_revoked = "cd" * 16, "ef" * 16  # enrolled on this device only
    templates.put(local_id, local, "sface-2021dec-fp32")
    templates.put(local_revoked, local, "sface-2021dec-fp32")
    assert syncer.sync_once().templates == 3 and templates.count() == 5

    admin.RevokeCard(rpb.RevokeCardRequest(card_id=revoked), timeout=10)
    state.revoke(bytes.fromhex(local_revoked), "lost phone")
    time.sleep(2.5)  # the third card has expired
    report = syncer.sync_once()
    assert report.templates == 1 and report.removed == 3
    assert {card for card in (kept, revoked, expiring, local_id, local_revoked) if templates.has(card)} == {
        kept, local_id}
    templates.close()


def test_a_site_with_more_templates_than_one_message_holds_still_syncs(tmp_path, registry):
    """gRPC refuses a message over 4 MiB by default, and SyncTemplates answered with every template of the
    site at once: about 650 bytes each, so past about 6,400 enrolled holders (a hospital's staff, patients
    and escorts) no gate received a template again, new holders were refused TEMPLATE_MISSING everywhere and
    ended cards' templates stayed. Templates now come in pages."""
    state, admin, transport = registry
    vector = np.random.default_rng(21).normal(size=128).astype("<f4")
    vector = (vector / np.linalg.norm(vector)).astype("<f4")
    commitment = hashlib.sha256(vector.tobytes()).digest()
    count = 7000
    with state.storage.atomic():
        for i in range(count):
            card_id = f"{i:032x}"
            state.storage.put_template(card_id, seal(state.template_public_key, vector.tobytes(), card_id.encode()),
                                       "sface-2021dec-fp32", commitment, "ward-7")
    syncer, _, templates = make_syncer(tmp_path, transport)
    report = syncer.sync_once()
    assert report.templates == count and templates.count() == count and not report.skipped
    state.revoke(bytes.fromhex(f"{count - 1:032x}"), "lost phone")  # the last page shrinks: one goes
    assert syncer.sync_once().removed == 1 and templates.count() == count - 1
    templates.close()


def test_a_registry_whose_pages_do_not_advance_is_an_error_not_a_loop(tmp_path):
    from edge.errors import RegistryUnavailable

    transport = GrpcTransport("127.0.0.1:9", tls=None, identity="dev-a")
    page = rpb.SyncTemplatesResponse(templates=[rpb.SealedTemplate(card_id="ab" * 16, sealed_template=b"x",
                                                                   model_id="m")], more=True)
    asked = []
    transport._call = lambda method, request: asked.append(request.after_card_id) or page  # type: ignore[method-assign]
    with pytest.raises(RegistryUnavailable) as e:
        transport.templates("dev-a")
    assert asked == ["", "ab" * 16] and "stopped advancing" in e.value.message
    transport.close()


def test_a_sync_that_brings_nothing_new_writes_nothing(tmp_path, registry):
    """Every sync (each minute by default) re-encrypted and rewrote every template of the site, one commit
    each: about 19 KB of SD-card writes per template per sync (2,000 templates: 38 MB a minute, 54 GB a
    day), which wears a Pi's SD card out. Only what is new or changed is written now, in one transaction."""
    state, admin, transport = registry
    cards = [enrolled_card(state, admin, 30 + i) for i in range(3)]
    syncer, _, templates = make_syncer(tmp_path, transport)
    assert syncer.sync_once().templates == 3
    before = templates._db.total_changes
    report = syncer.sync_once()
    assert report.templates == 3 and templates._db.total_changes == before  # all still there, nothing written
    cards.append(enrolled_card(state, admin, 40))
    assert syncer.sync_once().templates == 4 and templates._db.total_changes == before + 1  # only the new one
    assert all(templates.has(card) for card in cards)
    templates._db.execute("UPDATE templates SET sealed = zeroblob(80) WHERE card_id = ?", (cards[0],))  # damaged
    syncer.full_sync_every_s, syncer._full_sync_due = 0.0, 0.0  # the hourly full sync is due
    assert syncer.sync_once().written == 1  # the registry's copy replaces it
    commitment = state.storage.card(cards[0]).commitment
    assert templates.get(cards[0], commitment=commitment, model_id="sface-2021dec-fp32").shape == (128,)
    templates.close()


def test_a_sync_with_unchanged_lists_rewrites_only_the_sync_time(tmp_path, registry):
    """The trust and revocation lists were rewritten whole, with two fsyncs, at every sync (each minute by
    default): about 36 bytes per listed revocation a minute, 0.5 GB a day for 10,000, on an SD card. When
    nothing changed only the sync time is written now, and a restart still sees it."""
    state, admin, transport = registry
    for i in range(3):
        admin.RevokeCard(rpb.RevokeCardRequest(card_id=enrolled_card(state, admin, 50 + i)), timeout=10)
    syncer, _, templates = make_syncer(tmp_path, transport)
    syncer.sync_once()
    lists = tmp_path / "device" / "synced_state.json"
    written = lists.read_bytes()
    time.sleep(0.05)
    syncer.sync_once()
    assert lists.read_bytes() == written  # the same lists: not written again
    synced_at = syncer.last_sync
    assert synced_at > json.loads(written)["synced_at"]
    templates.close()
    again, verifier, templates = make_syncer(tmp_path, transport)  # a restart
    assert again.last_sync == synced_at and verifier.revocations.version == syncer.applied.revocations.version
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=enrolled_card(state, admin, 60)), timeout=10)
    again.sync_once()
    assert lists.read_bytes() != written and again.last_sync > synced_at  # a new list is written whole
    templates.close()
    third, _, templates = make_syncer(tmp_path, transport)
    assert third.last_sync == again.last_sync and third.applied.revocations.version == again.applied.revocations.version
    templates.close()


def test_a_sync_when_no_template_changed_sends_none(tmp_path, registry, monkeypatch):
    """Every sync (each minute, from every gate) unsealed and resealed every template of the site at the
    registry and unsealed them again on the board: for 7,000 templates about 0.6 s of the registry's CPU per
    gate per minute and seconds of a Pi's. The registry now answers "unchanged" when nothing changed."""
    import registry.service as service

    sealed = []
    real_seal = service.seal
    monkeypatch.setattr(service, "seal", lambda *a: sealed.append(a[2]) or real_seal(*a))
    state, admin, transport = registry
    kept = enrolled_card(state, admin, 70)
    ending = enrolled_card(state, admin, 71, valid_for_s=2)
    syncer, _, templates = make_syncer(tmp_path, transport)
    assert syncer.sync_once().templates == 2 and len(sealed) == 2
    report = syncer.sync_once()
    assert len(sealed) == 2 and report.templates == 2 and templates.has(kept)  # nothing sealed, nothing sent
    elsewhere = np.zeros(128, "<f4")
    elsewhere[0] = 1.0
    state.storage.put_template("ee" * 16, seal(state.template_public_key, elsewhere.tobytes(), ("ee" * 16).encode()),
                               "sface-2021dec-fp32", hashlib.sha256(elsewhere.tobytes()).digest(), "ward-9")
    syncer.sync_once()
    assert len(sealed) == 2  # an enrolment at another ward changes nothing here
    added = enrolled_card(state, admin, 72)
    syncer.sync_once()
    assert len(sealed) == 5 and templates.has(added)  # a change here: the whole list again
    time.sleep(2.5)  # a card expires: no write announced it, the registry's purge does
    syncer.sync_once()
    assert not templates.has(ending) and templates.has(kept) and templates.has(added)
    old_device = transport._call("SyncTemplates", rpb.SyncTemplatesRequest(device_id="dev-a"))  # before paging
    assert len(old_device.templates) == 2 and not old_device.more and not old_device.unchanged
    templates.close()


def test_a_token_queued_for_weeks_is_kept_and_the_log_says_what_to_widen(tmp_path, registry, caplog):
    """A vaccination station packed away between campaigns comes back with records older than the registry's
    14 days. They stay queued (nothing is lost), and the log no longer sends the operator to check clocks
    that are right: it names the registry's window."""
    state, _, transport = registry
    key = DeviceKey.load_or_create(tmp_path / "device" / "keys")
    weeks_ago = time.time() - 20 * 86400
    signer = TokenSigner(key, "dev-a", clock=ClockGuard(clock=lambda: weeks_ago))
    outbox = Outbox(tmp_path / "device" / "outbox.sqlite")
    content = TokenContent(card_id="cd" * 16, qr_text="EHC1:X", card_kid=b"k" * 8, nonce=b"n" * 16,
                           decision="ALLOW", reasons=["OK"], checks={}, site="ward-7", gate="g", revocation_version=1,
                           sequence=1)
    token_id = outbox.issue(lambda seq: signer.sign(content))[1].hex()
    outbox._db.execute("UPDATE tokens SET created = ? WHERE token_id = ?", (weeks_ago, token_id))  # made then
    deliverer = Deliverer(outbox, transport, clock_retry_s=0.1)
    with caplog.at_level("ERROR"):
        deliverer.run_once()
    assert outbox.pending_count() == 1 and outbox.rejected_count() == 0
    assert any("max-token-age-s" in r.getMessage() and r.fields["queued_days"] == 20.0 for r in caplog.records)
    state.max_token_age_s = 30 * 86400  # the operator widens the window
    time.sleep(0.15)
    deliverer.run_once()
    assert outbox.pending_count() == 0 and state.storage.token_count() == 1
    outbox.close()


def test_a_template_the_registry_cannot_read_stays_on_the_gates(tmp_path, registry):
    """A record the registry can no longer open (a damaged row) was left out of the sync like an ended card's,
    so every gate deleted its own good copy and the holder was refused TEMPLATE_MISSING everywhere. The
    registry now names it as withheld, and the gates keep theirs."""
    state, admin, transport = registry
    good, damaged = enrolled_card(state, admin, 80), enrolled_card(state, admin, 81)
    syncer, _, templates = make_syncer(tmp_path, transport)
    assert syncer.sync_once().templates == 2
    with state.storage.atomic():
        state.storage._execute("UPDATE templates SET sealed = ? WHERE card_id = ?", (b"\x00" * 600, damaged))
    syncer._full_sync_due = 0.0  # the hourly full sync
    report = syncer.sync_once()
    assert report.removed == 0 and templates.has(damaged) and templates.has(good)
    templates.close()


def test_a_registry_that_cannot_open_its_templates_logs_one_line_a_page(tmp_path, registry, caplog):
    """A registry restored with another template key fails every stored record: it wrote one error per
    record, per device and sync (7,000 holders and 50 gates: 350,000 lines), dropping its other lines."""
    state, admin, transport = registry
    cards = [enrolled_card(state, admin, 200 + i) for i in range(12)]
    with state.storage.atomic():
        for card in cards:
            state.storage._execute("UPDATE templates SET sealed = ? WHERE card_id = ?", (b"\x00" * 600, card))
    syncer, _, templates = make_syncer(tmp_path, transport)
    with caplog.at_level("ERROR", logger="registry.service"):
        syncer.sync_once()
    lines = [r for r in caplog.records if r.name == "registry.service"]
    assert len(lines) == 1 and lines[0].fields["skipped"] == 12 and len(lines[0].fields["card_ids"]) == 5
    templates.close()


def test_a_sync_with_unchanged_lists_fetches_neither_list(tmp_path, registry):
    """Every gate fetched the trust list and the whole revocation list at every sync (each minute), about 36
    bytes per listed revocation: with 5,000 revoked cards and 50 gates, 13 GB a day out of the registry for
    nothing. A device now sends the versions it holds, and an unchanged list comes back empty."""
    state, admin, transport = registry
    for i in range(20):
        admin.RevokeCard(rpb.RevokeCardRequest(card_id=enrolled_card(state, admin, 90 + i)), timeout=10)
    sizes: dict[str, list[int]] = {"GetTrustList": [], "GetRevocations": []}
    real_call = transport._call

    def measured(method, request):
        reply = real_call(method, request)
        if method in sizes:
            sizes[method].append(reply.ByteSize())
        return reply

    transport._call = measured
    syncer, verifier, templates = make_syncer(tmp_path, transport)
    syncer.sync_once()
    assert sizes["GetRevocations"][0] > 20 * 32  # the list, whole
    syncer.sync_once()
    assert sizes["GetRevocations"][1] < 32 and sizes["GetTrustList"][1] < 32  # versions only
    assert verifier.revocations.version == syncer.applied.revocations.version and syncer.age_s() < 5
    revoked = enrolled_card(state, admin, 120)
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=revoked), timeout=10)
    syncer.sync_once()
    assert sizes["GetRevocations"][2] > 20 * 32 and verifier.revocations.is_revoked(bytes.fromhex(revoked))
    templates.close()


def test_a_registry_restored_from_a_backup_can_reissue_its_lists_above_what_the_gates_hold(tmp_path, registry,
                                                                                          caplog):
    """After a restore from an older backup the registry's lists have lower versions than the gates hold. The
    gates refuse them as a rollback, by design, and would all go stale a day later with no way back but
    removing each gate's state file. The registry now notices the gates' newer versions, says so, and an
    operator re-issues the lists above them once the revocations lost with the backup are made again."""
    state, admin, transport = registry
    syncer, verifier, templates = make_syncer(tmp_path, transport)
    early = enrolled_card(state, admin, 130)
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=early), timeout=10)
    backup = state.storage.document("revocations")  # the nightly backup
    late = enrolled_card(state, admin, 131)
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=late), timeout=10)
    syncer.sync_once()
    held = verifier.revocations.version
    with state.storage.atomic():  # the database is restored from the backup
        state.storage.put_document("revocations", *backup)
        state.storage._execute("DELETE FROM revoked_cards WHERE card_id = ?", (late,))
    with caplog.at_level("ERROR"), pytest.raises(SecurityError) as e:
        syncer.sync_once()
    assert e.value.code == "sync_rollback"
    assert any("restored" in r.getMessage() for r in caplog.records)  # the registry says what happened
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=late), timeout=10)  # the lost revocation, made again
    reply = admin.ReissueLists(rpb.ReissueListsRequest(), timeout=10)
    assert reply.revocation_list_version > held
    syncer.sync_once()
    assert verifier.revocations.version == reply.revocation_list_version
    assert all(verifier.revocations.is_revoked(bytes.fromhex(card)) for card in (early, late))
    templates.close()


def test_the_registry_names_a_gate_whose_certificate_is_about_to_expire(tmp_path, registry, pki, caplog):  # noqa: F811
    """Every gate of a site is usually given its certificate on one day; the registry's log names each one in
    the last 30 days, once a day, so the site renews them before the gates are shut out together."""
    from edge.security.ca import issue_cert

    _, admin, device_a = registry
    issue_cert(pki, "dev-short", days=5)
    register(admin, "dev-short", tmp_path / "short" / "keys", "ward-7")
    transport = GrpcTransport(device_a.address, tls=(pki / "ca.pem", pki / "dev-short.pem", pki / "dev-short.key"),
                              server_name="registry")
    try:
        with caplog.at_level("WARNING", logger="registry.service"):
            transport.trust_list()
            transport.revocations()
        lines = [r for r in caplog.records if "peer_certificate_expiring" in r.getMessage()]
        assert len(lines) == 1 and lines[0].fields["caller"] == "dev-short"
        assert 4.9 <= lines[0].fields["days_left"] <= 5.0
        caplog.clear()
        with caplog.at_level("WARNING", logger="registry.service"):
            device_a.trust_list()  # 825 days left: nothing to say
        assert not [r for r in caplog.records if "peer_certificate" in r.getMessage()]
    finally:
        transport.close()


def test_a_boards_server_certificate_also_serves_its_registry_link(tmp_path, registry, pki):  # noqa: F811
    """The README gives a board one certificate (`edge ca issue CA gate-7a --server`) and its device id is its
    name, so the registry link uses that file too. It was issued for server authentication only, the registry
    refused every handshake, and the board logged the registry as unreachable at every sync."""
    from edge.security.ca import issue_cert

    _, admin, device_a = registry
    issue_cert(pki, "gate-7a", server=True)
    register(admin, "gate-7a", tmp_path / "gate" / "keys", "ward-7")
    transport = GrpcTransport(device_a.address,
                              tls=(pki / "ca.pem", pki / "gate-7a.pem", pki / "gate-7a.key"), server_name="registry")
    try:
        assert transport.trust_list()[0] >= 1
    finally:
        transport.close()


def test_tokens_refused_for_a_registration_mistake_are_kept_and_arrive_once_it_is_corrected(tmp_path, registry):
    """A gate registered under another site than the one it signs for: every token it made was refused
    wrong_site and parked for good, so correcting the registration could not bring them back."""
    from edge.security.keys import DeviceKey as Key
    from edge.security.sealing import load_or_create_x25519, raw_public

    state, admin, transport = registry
    keys = tmp_path / "device" / "keys"
    signer = TokenSigner(Key.load_or_create(keys), "dev-a", clock=ClockGuard())
    outbox = Outbox(tmp_path / "device" / "outbox.sqlite")
    content = TokenContent(card_id="cd" * 16, qr_text="EHC1:X", card_kid=b"k" * 8, nonce=b"n" * 16,
                           decision="ALLOW", reasons=["OK"], checks={}, site="ward-9", gate="g", revocation_version=1,
                           sequence=1)  # the gate's [site] id is ward-9; it was registered at ward-7
    outbox.issue(lambda seq: signer.sign(content))
    deliverer = Deliverer(outbox, transport, clock_retry_s=0.1)
    deliverer.run_once()
    assert outbox.pending_count() == 1 and outbox.rejected_count() == 0 and deliverer.stats.rejected == 0
    admin.RegisterDevice(rpb.RegisterDeviceRequest(  # the operator registers it again with the right site
        device_id="dev-a", signing_key=Key.load_or_create(keys).public_raw,
        encryption_key=raw_public(load_or_create_x25519(keys).public_key()), site="ward-9"), timeout=10)
    time.sleep(0.15)
    deliverer.run_once()
    assert outbox.pending_count() == 0 and state.storage.token_count() == 1


def queue_tokens(outbox: Outbox, signer: TokenSigner, count: int) -> None:
    """``count`` ALLOW tokens of ward-7, signed and queued as a gate's sessions would leave them."""
    for sequence in range(1, count + 1):
        content = TokenContent(card_id="cd" * 16, qr_text="EHC1:X", card_kid=b"k" * 8, nonce=os.urandom(16),
                               decision="ALLOW", reasons=["OK"], checks={}, site="ward-7", gate="g",
                               revocation_version=1, sequence=sequence)
        outbox.issue(lambda seq, content=content: signer.sign(content))


def test_a_backlog_refused_as_too_old_is_one_log_line_per_delivery_not_one_per_token(tmp_path, registry, caplog):
    """A station back from storage with a backlog the registry refuses as too old wrote one error per token at
    every retry (10,000 queued tokens: 10,000 lines every clock_retry_s), and under journald's rate limit the
    daemon's other lines were dropped with them."""
    _, _, transport = registry
    weeks_ago = time.time() - 20 * 86400
    signer = TokenSigner(DeviceKey.load_or_create(tmp_path / "device" / "keys"), "dev-a",
                         clock=ClockGuard(clock=lambda: weeks_ago))
    outbox = Outbox(tmp_path / "device" / "outbox.sqlite")
    queue_tokens(outbox, signer, 40)
    outbox._db.execute("UPDATE tokens SET created = ?", (weeks_ago,))
    with caplog.at_level("ERROR", logger="edge.registry_client.delivery"):
        Deliverer(outbox, transport, batch=100).run_once()
    lines = [r for r in caplog.records if r.name == "edge.registry_client.delivery"]
    assert len(lines) == 1 and "max-token-age-s" in lines[0].getMessage()
    assert lines[0].fields["tokens"] == 40 and lines[0].fields["reasons"] == {"stale_iat": 40}
    assert lines[0].fields["queued_days"] == 20.0 and len(lines[0].fields["token_ids"]) == 5
    assert outbox.pending_count() == 40  # still nothing lost
    outbox.close()


def test_a_device_over_the_registrys_daily_cap_keeps_its_tokens_until_the_cap_is_raised(tmp_path, registry):
    """A compromised gate signs as many tokens as it likes; before, the registry stored them all, until its
    disk was full and every gate of the hospital stopped. Now it stores a device's tokens up to a daily cap
    (by the day they were signed) and the gate keeps the rest queued, so a sound gate loses nothing."""
    from edge.security.keys import DeviceKey as Key

    state, admin, transport = registry
    signer = TokenSigner(Key.load_or_create(tmp_path / "device" / "keys"), "dev-a", clock=ClockGuard())
    outbox = Outbox(tmp_path / "device" / "outbox.sqlite")
    queue_tokens(outbox, signer, 3)
    state.max_tokens_per_device_day = 2
    deliverer = Deliverer(outbox, transport, clock_retry_s=0.1)
    deliverer.run_once()
    assert state.storage.token_count() == 2
    assert outbox.pending_count() == 1 and outbox.rejected_count() == 0 and deliverer.stats.rejected == 0
    deliverer.run_once()  # still over the cap: refused again, still kept
    assert state.storage.token_count() == 2 and outbox.pending_count() == 1
    state.max_tokens_per_device_day = 3  # the operator finds the gate sound and raises the cap
    time.sleep(0.15)
    deliverer.run_once()
    assert outbox.pending_count() == 0 and state.storage.token_count() == 3
