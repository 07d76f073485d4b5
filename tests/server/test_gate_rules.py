"""Ward escort gate rules, offline at the gate (issue 11): the permit's ward, its health condition, and entry
limits from the gate's own records. A real daemon over mutual TLS; the card text is given by the caller
(as a scanner app does), the camera replays the holder."""

from __future__ import annotations

import os
import time

import pytest
from msgspec.structs import replace

from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.templates import template_digest

from .conftest import Camera, EdgeDaemon, connect, enroll, make_config

pytestmark = pytest.mark.slow


def gate(tmp_path, world, testdata, face_stage, **site):
    config = make_config(tmp_path, world.issuer)
    config = replace(config, site=replace(config.site, **site))
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["no_card"]))
    enroll(daemon, world, testdata, face_stage)
    return daemon


def verify(daemon, text):
    with connect(daemon) as channel:
        reply = pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=os.urandom(16),
                                                                                 card_text=text), timeout=60)
    return pb.Decision.Name(reply.decision), [pb.ReasonCode.Name(r) for r in reply.reasons], list(reply.messages)


def test_a_permit_is_accepted_only_at_gates_of_its_ward(tmp_path, world, testdata, face_stage):
    digest = template_digest(world.holder_template)
    other_ward, _ = world.issuer.issue(digest, site="ward-7", ward="oncology")
    daemon = gate(tmp_path, world, testdata, face_stage, wards=("paediatrics",))
    daemon.start()
    try:
        decision, reasons, messages = verify(daemon, other_ward)
        assert (decision, reasons) == ("DENY", ["CARD_WRONG_WARD"]) and messages == ["This permit is for another ward"]
        decision, reasons, _ = verify(daemon, world.cards["holder"][0])  # a paediatrics permit: past the card rules
        assert reasons != ["CARD_WRONG_WARD"]
    finally:
        daemon.stop(1.0)


def test_an_expired_health_condition_is_refused_offline(tmp_path, world, testdata, face_stage):
    digest = template_digest(world.holder_template)
    lapsed, _ = world.issuer.issue(digest, site="ward-7", condition_until=int(time.time()) - 3600)
    daemon = gate(tmp_path, world, testdata, face_stage)
    daemon.start()
    try:
        assert verify(daemon, lapsed)[:2] == ("DENY", ["CONDITION_EXPIRED"])
    finally:
        daemon.stop(1.0)


def test_entry_limits_come_from_the_gates_own_records(tmp_path, world, testdata, face_stage):
    from edge.gate.entries import EntryLog

    log = EntryLog(tmp_path / "entries.sqlite", per_day=2)
    card = world.cards["holder"][1].hex()
    assert log.refusal(card) is None
    log.record(card)
    log.record(card)
    assert "2 entries" in log.refusal(card)
    log.close()
    spaced = EntryLog(tmp_path / "spaced.sqlite", min_interval_s=60)
    spaced.record(card)
    assert "wait" in spaced.refusal(card)
    spaced.close()
    # The daemon refuses the permit before any face work once its entries are used up, and says why.
    daemon = gate(tmp_path / "d", world, testdata, face_stage, entries_per_day=1)
    daemon.parts.entries.record(card)
    daemon.start()
    try:
        decision, reasons, messages = verify(daemon, world.cards["holder"][0])
        assert (decision, reasons) == ("DENY", ["ENTRY_LIMIT"])
        assert messages == ["This permit cannot be used again yet; please see staff"]
    finally:
        daemon.stop(1.0)


def test_an_allow_that_could_not_be_signed_uses_up_no_entry(tmp_path, world, testdata, face_stage):
    """A board without a real-time clock boots before its clock is synchronised: the gate refuses with
    CLOCK_UNTRUSTED, since it cannot sign. That refusal used to count as one of the permit's entries, so once
    the clock was right the holder was refused ENTRY_LIMIT for a day."""
    from edge.security.clock import ClockGuard, KernelClock

    config = make_config(tmp_path, world.issuer)
    daemon = EdgeDaemon(replace(config, site=replace(config.site, entries_per_day=1)),
                        source_factory=Camera(scene=world.scenes["holder"]))
    enroll(daemon, world, testdata, face_stage)
    signer = daemon.parts.signer
    synced = signer.clock
    signer.clock = ClockGuard(require_sync=True, kernel=lambda: KernelClock(state=5,
                                                                            maxerror_us=16_000_000))
    daemon.start()
    try:
        decision, reasons, _ = verify(daemon, world.cards["holder"][0])
        assert (decision, reasons) == ("DENY", ["CLOCK_UNTRUSTED"])  # not "OK" in a refusal
        signer.clock = synced  # timesyncd has caught up
        decision, reasons, _ = verify(daemon, world.cards["holder"][0])
        assert (decision, reasons) == ("ALLOW", ["OK"])
        decision, reasons, _ = verify(daemon, world.cards["holder"][0])
        assert (decision, reasons) == ("DENY", ["ENTRY_LIMIT"])  # and the one entry a day now counts
    finally:
        daemon.stop(1.0)


def test_the_card_claims_round_trip(world):
    from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
    from edge.credential.verifier import parse_claims

    text, _ = world.issuer.issue(b"\x01" * 32, site="ward-7", condition_until=2_000_000_000, age_band="adult")
    message = parse_cose_sign1(unwrap(text))
    card = parse_claims(loads_exact(message.payload), kid=b"", alg=-7)
    assert card.condition_until == 2_000_000_000 and card.age_band == "adult" and card.scope.ward == "paediatrics"


def test_the_daemon_forgets_what_no_rule_needs_at_start(tmp_path, world, testdata, face_stage):
    """The retention runs at start and then daily (edge/gate/entries.py EntryLog.prune): a station stored for
    a season comes back without last season's recorded appointments and staff overrides."""
    from edge.gate.entries import EntryLog

    months_ago = time.time() - 90 * 86400
    log = EntryLog(tmp_path / "entries.sqlite", clock=lambda: months_ago)
    log.record_vaccination("aa" * 16, "r1", until=months_ago + 3600)
    log.record_override("card:" + "cd" * 16, "staff-1")
    log.record_override("d1" * 16, "staff-1")  # a DENY this device never made: nothing can name it
    log.close()
    daemon = gate(tmp_path, world, testdata, face_stage)
    daemon.start()
    try:
        entries = daemon.parts.entries
        assert not entries.recorded("aa" * 16) and not entries.overridden("d1" * 16)
        assert entries._db.execute("SELECT COUNT(*) FROM overrides").fetchone()[0] == 0
    finally:
        daemon.stop(1.0)


def test_a_gate_forgets_faces_enrolled_on_it_that_no_card_ever_claimed(tmp_path, world, testdata, face_stage):
    """A template enrolled at the desk for a card that was never issued (or a child's, which the registry
    does not keep) stayed on the gate for good; after device.keep_unclaimed_templates_days it goes. A
    template whose card was matched stays until that card ends."""
    from edge.security.templates import TemplateStore

    daemon = gate(tmp_path, world, testdata, face_stage)
    daemon.parts.templates.put("ee" * 16, world.holder_template, "sface-2021dec-fp32")  # never claimed
    daemon.parts.templates._db.execute("UPDATE templates SET updated = ? WHERE card_id = ?",
                                       (time.time() - 401 * 86400, "ee" * 16))
    daemon.parts.templates._db.execute("UPDATE templates SET updated = ? WHERE card_id = ?",
                                       (time.time() - 401 * 86400, world.cards["holder"][1].hex()))
    daemon.start()  # the retention runs at start, then daily
    try:
        assert not daemon.templates.has("ee" * 16)
        assert not daemon.templates.has(world.cards["holder"][1].hex())  # enrolled long ago, never matched
    finally:
        daemon.stop(1.0)
    store = TemplateStore(tmp_path / "templates.sqlite", tmp_path / "keys")
    assert store.count() == 3  # the other cards' templates, enrolled just now


def test_matching_a_card_tells_the_gate_when_its_enrolled_face_may_go(tmp_path, world, testdata, face_stage):
    daemon = gate(tmp_path, world, testdata, face_stage)
    daemon.start()
    try:
        decision, _, _ = verify(daemon, world.cards["holder"][0])
        assert decision in ("ALLOW", "RETRY")  # the template is read before liveness, which may ask again
        until = daemon.templates._db.execute("SELECT until FROM templates WHERE card_id = ?",
                                             (world.cards["holder"][1].hex(),)).fetchone()[0]
    finally:
        daemon.stop(1.0)
    from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
    from edge.credential.verifier import parse_claims

    card = parse_claims(loads_exact(parse_cose_sign1(unwrap(world.cards["holder"][0])).payload), kid=b"", alg=-7)
    assert until == card.expires_at > time.time()


def test_a_gate_without_a_registry_keeps_serving_past_its_outbox_limit(tmp_path, world, testdata, face_stage):
    """A standalone gate kept every token pending for a registry it does not have: after outbox_max_rows
    sessions (100,000 by default, months at a busy gate) it refused everyone (outbox_full)."""
    config = make_config(tmp_path, world.issuer)
    config = replace(config, registry=replace(config.registry, outbox_max_rows=2))
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["holder"]))
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            replies = [stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60) for _ in range(3)]
        assert [pb.Decision.Name(r.decision) for r in replies] == ["ALLOW"] * 3
        assert all(reply.token for reply in replies)  # each session signed its token and answered
        assert daemon.outbox.pending_count() == 0 and len(daemon.outbox.all_tokens()) == 3
    finally:
        daemon.stop(1.0)
