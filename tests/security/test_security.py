import os
import sqlite3
import stat
import time

import numpy as np
import pytest

from edge.errors import SecurityError
from edge.registry_client.outbox import Outbox, OutboxFull
from edge.security.clock import ClockGuard, KernelClock, read_kernel_clock
from edge.security.keys import DeviceKey
from edge.security.templates import TemplateStore, template_digest
from edge.security.tokens import TokenContent, TokenSigner, load_public_key, verify_token

NOW = 1_800_000_000.0


def content(**overrides):
    fields = dict(card_id="ab" * 16, qr_text="EHC1:X", card_kid=b"k" * 8, nonce=b"n" * 16, decision="ALLOW",
                  reasons=["OK"], checks={"face_score": 0.7}, site="s", gate="g", revocation_version=3, sequence=1)
    fields.update(overrides)
    return TokenContent(**fields)


def test_device_key_is_private_and_stable(tmp_path):
    key = DeviceKey.load_or_create(tmp_path)
    mode = stat.S_IMODE((tmp_path / "device_key.pem").stat().st_mode)
    assert mode == 0o600
    assert DeviceKey.load_or_create(tmp_path).key_id == key.key_id
    os.chmod(tmp_path / "device_key.pem", 0o644)
    with pytest.raises(SecurityError) as e:
        DeviceKey.load_or_create(tmp_path)
    assert e.value.code == "key_permissions"


def test_token_round_trip_and_tampering(tmp_path):
    key = DeviceKey.load_or_create(tmp_path)
    signer = TokenSigner(key, "dev-1", clock=ClockGuard(clock=lambda: NOW), lifetime_s=60)
    token, token_id = signer.sign(content())
    claims = verify_token(token, key.public_key, now=NOW + 5)
    assert claims["iss"] == "dev-1" and claims["cti"] == token_id and claims["exp"] == NOW + 60
    assert claims["nonce"] == b"n" * 16 and claims["sequence"] == 1 and claims["decision"] == "ALLOW"
    assert len(token) < 600
    for i in range(0, len(token), 7):
        tampered = bytearray(token)
        tampered[i] ^= 0x01
        with pytest.raises(SecurityError):
            verify_token(bytes(tampered), key.public_key)
    other = DeviceKey.load_or_create(tmp_path / "other")
    with pytest.raises(SecurityError) as e:
        verify_token(token, other.public_key)
    assert e.value.code == "token_kid"
    assert load_public_key(key.public_raw.hex().encode()).public_bytes_raw() == key.public_raw
    assert load_public_key(key.public_pem()).public_bytes_raw() == key.public_raw


def test_untrusted_clock_refuses_to_sign(tmp_path):
    key = DeviceKey.load_or_create(tmp_path)
    signer = TokenSigner(key, "dev", clock=ClockGuard(clock=lambda: 86400.0))  # 1970-01-02
    with pytest.raises(SecurityError) as e:
        signer.sign(content())
    assert e.value.code == "clock_untrusted"
    kernel = {"state": KernelClock(state=5, maxerror_us=16_000_000)}  # what an unsynced kernel reports
    guard = ClockGuard(require_sync=True, clock=lambda: NOW, kernel=lambda: kernel["state"])
    ok, why = guard.trusted()
    assert not ok and "timesyncd, chrony or ntpd" in why
    kernel["state"] = KernelClock(state=0, maxerror_us=250_000)  # chrony/ntpd/timesyncd disciplining it
    assert guard.trusted()[0]
    kernel["state"] = None  # no adjtimex at all: refuse rather than guess
    assert not guard.trusted()[0]


def test_the_kernel_clock_is_read_through_adjtimex():
    state = read_kernel_clock()  # the real syscall on this machine (read-only, no privilege needed)
    assert state is not None and 0 <= state.state <= 5 and state.maxerror_us >= 0
    assert state.synchronised == (state.state != 5 and state.maxerror_us < 16_000_000)


def test_template_store_encrypts_and_checks_commitment(tmp_path):
    store = TemplateStore(tmp_path / "t.sqlite", tmp_path / "keys")
    vector = np.random.default_rng(0).normal(size=128).astype(np.float32)
    commitment = store.put("card1", vector, "sface")
    assert commitment == template_digest(vector)
    np.testing.assert_array_equal(store.get("card1", commitment=commitment, model_id="sface"), vector)
    raw = (tmp_path / "t.sqlite").read_bytes() + (tmp_path / "t.sqlite-wal").read_bytes()
    assert vector.tobytes()[:32] not in raw  # encrypted at rest
    with pytest.raises(SecurityError) as e:
        store.get("card1", commitment=b"\x00" * 32, model_id="sface")
    assert e.value.code == "template_mismatch"
    with pytest.raises(SecurityError) as e:
        store.get("missing", commitment=commitment, model_id="sface")
    assert e.value.code == "template_missing"
    # A record moved to another card fails authentication.
    store._db.execute("INSERT INTO templates SELECT 'card2', model_id, sealed, updated, source, until "
                      "FROM templates WHERE card_id='card1'")
    with pytest.raises(SecurityError) as e:
        store.get("card2", commitment=commitment, model_id="sface")
    assert e.value.code == "template_corrupt"


def test_outbox_sequence_and_durability(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite", max_rows=3)
    with pytest.raises(RuntimeError):
        outbox.issue(lambda seq: (_ for _ in ()).throw(RuntimeError("signing failed")))
    issued = [outbox.issue(lambda seq: (f"token-{seq}".encode(), os.urandom(16))) for _ in range(3)]
    assert [s for _, _, s in issued] == [1, 2, 3]
    with pytest.raises(OutboxFull):
        outbox.issue(lambda seq: (b"x", os.urandom(16)))
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite", max_rows=10)
    assert reopened.pending_count() == 3
    reopened.mark_delivered([issued[0][1].hex()])
    assert reopened.pending_count() == 2
    _, _, seq = reopened.issue(lambda seq: (b"t", os.urandom(16)))
    assert seq == 4  # the failed signing did not consume a number, the reopen did not reset it
    assert time.time() > 0


def test_delivered_tokens_are_pruned_after_the_retention_and_the_audit_chain_stays(tmp_path):
    """A board runs for years: a token the registry has stored leaves the outbox after the retention (the
    registry holds it), so the SD card does not fill; pending and rejected tokens stay. The audit entries
    before the oldest token kept leave too, and the chain stays whole."""
    outbox = Outbox(tmp_path / "o.sqlite")
    ids = [outbox.issue(lambda seq: (os.urandom(400), os.urandom(16)), card_id=f"card{i}", decision="ALLOW",
                        reasons="OK")[1].hex() for i in range(4)]
    outbox.mark_delivered(ids[:2])
    outbox.mark_rejected(ids[2], "unknown_key")
    keep_s = 30 * 86400
    assert outbox.prune_delivered(keep_s) == 0  # delivered just now: kept
    assert outbox.verify_audit()["entries"] == 4 and outbox.decision_of(ids[0]) == ("card0", "ALLOW")
    assert outbox.prune_delivered(keep_s, now=time.time() + keep_s + 1) == 2
    assert len(outbox.all_tokens()) == 2 and outbox.pending_count() == 1 and outbox.rejected_count() == 1
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 2, "pruned_through": 2}
    assert outbox.decision_of(ids[0]) is None and outbox.decision_of(ids[2]) == ("card2", "ALLOW")
    assert outbox.issue(lambda seq: (b"t", os.urandom(16)))[2] == 5  # the sequence goes on ...
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 3}  # ... and the chain


def test_a_refused_token_does_not_keep_the_gates_history_for_good(tmp_path):
    """A token kept holds the audit log from its entry on. Rejected tokens stayed for good, so one refusal
    (a key not yet registered, say) kept a record of every later passage through the gate, for as long as
    the board ran. They now leave after their own retention, and the history after them with it."""
    outbox = Outbox(tmp_path / "o.sqlite")
    refused = outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id="c0" * 16, decision="ALLOW",
                           reasons="OK")[1].hex()
    outbox.mark_rejected(refused, "unknown_key")
    later = [outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id=f"{i:032x}", decision="ALLOW",
                          reasons="OK")[1].hex() for i in range(3)]
    outbox.mark_delivered(later)
    day = 86400.0
    outbox.prune_delivered(30 * day, now=time.time() + 31 * day, keep_rejected_s=90 * day)
    assert outbox.rejected_count() == 1 and outbox.verify_audit()["entries"] == 4  # held from the refusal on
    outbox.prune_delivered(30 * day, now=time.time() + 91 * day, keep_rejected_s=90 * day)
    assert outbox.rejected_count() == 0 and len(outbox.all_tokens()) == 0
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 0, "pruned_through": 4}


def test_a_standalone_gates_tokens_are_handed_over_when_made_and_never_fill_its_outbox(tmp_path):
    """Without a registry the caller's reply is a token's only destination. Kept pending, a standalone
    gate's tokens reached outbox_max_rows after that many sessions, and the gate then refused everyone."""
    outbox = Outbox(tmp_path / "o.sqlite", max_rows=3, standalone=True)
    for i in range(5):
        outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id=f"{i:032x}", decision="ALLOW", reasons="OK")
    assert outbox.pending_count() == 0 and len(outbox.all_tokens()) == 5
    assert outbox.prune_delivered(30 * 86400.0, now=time.time() + 31 * 86400.0) == 5
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 0}
    outbox.close()
    earlier = Outbox(tmp_path / "earlier.sqlite", max_rows=3)  # a standalone gate of an earlier release
    for i in range(3):
        earlier.issue(lambda seq: (b"t", os.urandom(16)), card_id=f"{i:032x}", decision="ALLOW", reasons="OK")
    earlier.close()
    upgraded = Outbox(tmp_path / "earlier.sqlite", max_rows=3, standalone=True)
    assert upgraded.pending_count() == 0  # its full outbox no longer refuses the next session
    upgraded.issue(lambda seq: (b"t", os.urandom(16)))


def test_a_gate_keeps_no_record_of_a_cards_passages_once_the_registry_holds_them(tmp_path):
    """Kept for good, the audit log was a history of every card's passages through the gate for as long as
    the board ran, on a board anyone can carry off. An attacker who lifts the board's database finds only the
    sessions of the retention period, and a pruned chain still shows an edit after the anchor."""
    outbox = Outbox(tmp_path / "o.sqlite")
    child = "c0" * 16
    for _ in range(3):
        outbox.mark_delivered([outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id=child, decision="ALLOW",
                                            reasons="OK")[1].hex()])
    keep_s = 30 * 86400
    outbox.prune_delivered(keep_s, now=time.time() + keep_s + 1)
    lifted = sqlite3.connect(str(tmp_path / "o.sqlite"))
    assert lifted.execute("SELECT COUNT(*) FROM audit WHERE card_id = ?", (child,)).fetchone()[0] == 0
    assert lifted.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 0
    lifted.close()
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 0, "pruned_through": 3}
    for i in range(2):
        outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id=f"card{i}", decision="ALLOW", reasons="OK")
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 2}
    outbox._db.execute("UPDATE audit SET decision='DENY' WHERE seq=4")  # the first entry after the anchor
    assert outbox.verify_audit() == {"valid": False, "entries": 0, "first_bad_seq": 4, "pruned_through": 3}


def test_the_deliverer_prunes_at_most_once_per_period_with_the_configured_retention(tmp_path):
    from edge.config import load_config
    from edge.registry_client.delivery import Deliverer

    (tmp_path / "site.toml").write_text("[registry]\nkeep_delivered_days = 2\n")
    keep_s = load_config(tmp_path / "site.toml").registry.keep_delivered_days * 86400
    outbox = Outbox(tmp_path / "o.sqlite")
    first = outbox.issue(lambda seq: (b"t", os.urandom(16)))[1].hex()
    outbox.mark_delivered([first])
    deliverer = Deliverer(outbox, transport=None, keep_delivered_s=keep_s, prune_every_s=3600)
    now = time.time()
    assert deliverer.prune_if_due(now + 86400) == 0  # a day on: within the site's two days
    second = outbox.issue(lambda seq: (b"t", os.urandom(16)))[1].hex()
    outbox.mark_delivered([second])
    assert deliverer.prune_if_due(now + 86400 + 1800) == 0  # not due again within the hour
    assert deliverer.prune_if_due(now + 3 * 86400) == 2 and outbox.all_tokens() == []


def test_full_disk_is_a_clear_error_and_corrupts_nothing(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite", max_pages=12)
    issued = 0
    with pytest.raises(OutboxFull) as e:
        for _ in range(10_000):
            outbox.issue(lambda seq: (os.urandom(400), os.urandom(16)), card_id="c", decision="ALLOW", reasons="OK")
            issued += 1
    assert "full" in e.value.message and issued > 3
    assert outbox.pending_count() == issued
    assert outbox._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": issued}


def test_audit_chain_detects_edits_and_deletions(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    for i in range(5):
        outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id=f"card{i}", decision="ALLOW", reasons="OK")
    assert outbox.verify_audit()["valid"] and outbox.verify_audit()["entries"] == 5
    outbox._db.execute("UPDATE audit SET decision='DENY' WHERE seq=3")
    assert outbox.verify_audit() == {"valid": False, "entries": 2, "first_bad_seq": 3, "pruned_through": None}
    outbox._db.execute("UPDATE audit SET decision='ALLOW' WHERE seq=3")
    assert outbox.verify_audit()["valid"]
    outbox._db.execute("DELETE FROM audit WHERE seq=2")
    assert outbox.verify_audit()["first_bad_seq"] == 3


def test_faces_enrolled_here_go_when_their_card_ends_or_when_no_card_ever_claims_them(tmp_path):
    """Before, a template enrolled on the device stayed until its card was revoked: a gate without a
    registry kept every face it had ever enrolled, and one with a registry kept the faces the registry would
    not (a child's) or never heard of (a card never issued)."""
    from edge.security.templates import REGISTRY

    store = TemplateStore(tmp_path / "t.sqlite", tmp_path / "keys")
    vector = np.random.default_rng(0).normal(size=128).astype(np.float32)
    now, day = time.time(), 86400.0
    for card in ("ended", "valid", "unclaimed"):
        store.put(card, vector, "sface")
    store.put("synced", vector, "sface", source=REGISTRY)
    store.note_card_end("ended", now - 1)
    store.note_card_end("valid", now + 30 * day)
    store.note_card_end("synced", now - 1)  # the registry decides for its own (retain)
    assert store.prune_enrolled(now, 400 * day) == 1 and not store.has("ended")
    assert {c for c in ("valid", "unclaimed", "synced") if store.has(c)} == {"valid", "unclaimed", "synced"}
    assert store.prune_enrolled(now + 31 * day, 400 * day) == 1 and not store.has("valid")
    assert store.prune_enrolled(now + 401 * day, 400 * day) == 1 and not store.has("unclaimed")
    assert store.has("synced")


def test_noting_a_cards_end_writes_nothing_when_it_is_known_already(tmp_path):
    store = TemplateStore(tmp_path / "t.sqlite", tmp_path / "keys")
    store.put("card", np.ones(128, np.float32) / np.sqrt(128), "sface")
    store.note_card_end("card", 2_000_000_000)
    before = store._db.total_changes
    store.note_card_end("card", 2_000_000_000)  # every later match of the same card
    assert store._db.total_changes == before


def test_a_sealed_template_with_a_low_order_key_is_a_typed_refusal(tmp_path):
    """An all-zero ephemeral key (a damaged row, or a forged StoreTemplate) made X25519 raise a bare ValueError:
    an UNKNOWN answer for the call, and at the registry every device's template sync failed while the record
    was there. It is template_corrupt, like any other record that does not open."""
    from edge.security.sealing import load_or_create_x25519, raw_public, seal, unseal

    key = load_or_create_x25519(tmp_path)
    good = seal(raw_public(key.public_key()), b"x" * 512, b"card")
    assert unseal(key, good, b"card") == b"x" * 512
    with pytest.raises(SecurityError) as e:
        unseal(key, b"\x00" * 32 + good[32:], b"card")
    assert e.value.code == "template_corrupt"


def test_a_long_history_is_pruned_a_chunk_at_a_time_and_the_chain_holds(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    ids = [outbox.issue(lambda seq: (b"t", os.urandom(16)), card_id=f"card{i}", decision="ALLOW",
                        reasons="OK")[1].hex() for i in range(7)]
    outbox.mark_delivered(ids[:5])
    keep_s = 30 * 86400
    assert outbox.prune_delivered(keep_s, now=time.time() + keep_s + 1, chunk=2) == 5
    assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 2, "pruned_through": 5}
    assert outbox.pending_count() == 2


def test_a_card_end_that_cannot_be_written_does_not_fail_the_session(tmp_path):
    store = TemplateStore(tmp_path / "t.sqlite", tmp_path / "keys")
    store.put("card", np.ones(128, np.float32) / np.sqrt(128), "sface")
    store._db.execute("PRAGMA query_only = ON")  # as a read-only or full disk would refuse the write
    store.note_card_end("card", 2_000_000_000)  # logged, not raised
    assert store._db.execute("SELECT until FROM templates").fetchone()[0] is None
