"""The revocation list every gate downloads stays bounded: a revoked card leaves it once it has been expired
for ``RegistryState.revocation_grace_s`` (the gates refuse it as expired), instead of staying for good."""

from __future__ import annotations

import hashlib
import json
import time

from edge.credential.trust import RevocationList
from registry.service import RegistryState
from registry.storage import SQLiteStorage


def listed(state: RegistryState) -> RevocationList:
    return RevocationList.from_json(json.loads(state.storage.document("revocations")[1]))


def issue(state: RegistryState, valid_for_s: int) -> bytes:
    _, card = state.issuer.issue(card_type="health_card", holder=bytes(16), site="ward-7", valid_for_s=valid_for_s,
                                 template_sha256=hashlib.sha256(b"face").digest(), model_id="sface-2021dec-fp32")
    from registry.storage import CardRecord

    state.storage.put_card(CardRecord(card_id=card.card_id.hex(), site="ward-7", card_type="health_card",
                                      commitment=hashlib.sha256(b"face").digest(), model_id="sface-2021dec-fp32",
                                      issued=float(card.issued_at), expires=float(card.expires_at)))
    return card.card_id


def test_a_revoked_card_leaves_the_list_once_it_has_long_expired(tmp_path):
    """Every discharge revokes escort permits; kept for good, the list every gate fetches at each sync grew
    by about 36 bytes per revocation and would pass gRPC's 4 MiB message limit after about 116,000, when
    no gate could sync at all."""
    state = RegistryState.open(SQLiteStorage(tmp_path / "r.sqlite"), tmp_path / "state")
    state.revocation_grace_s = 1.0
    lasting, brief, unknown = issue(state, 86400), issue(state, 1), bytes.fromhex("ab" * 16)
    state.revoke(lasting, "lost")
    state.revoke(brief, "discharge")
    state.revoke(unknown, "lost")  # a card this registry holds no record of: its end is unknown, it stays
    assert {c for c in (lasting, brief, unknown) if listed(state).is_revoked(c)} == {lasting, brief, unknown}
    time.sleep(2.2)  # the brief card expired more than the grace ago
    later = issue(state, 86400)
    version, already = state.revoke(later, "lost")
    assert not already and listed(state).version == version
    assert {c for c in (lasting, brief, unknown, later) if listed(state).is_revoked(c)} == {lasting, unknown, later}
    assert state.storage.is_revoked(brief.hex())  # the registry itself still knows
    assert state.revoke(brief, "again")[1]  # and a second revocation of it is no change
    assert listed(state).version == version
