import zlib

import base45
import cbor2
import pytest

from edge.credential.codec import MAX_COSE_BYTES, wrap
from edge.credential.issuer import CardIssuer, qr_version
from edge.credential.keys import generate_issuer_key
from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier
from edge.errors import CredentialError

from .conftest import NOW, issue


def code_of(verifier, text):
    with pytest.raises(CredentialError) as e:
        verifier.verify(text)
    return e.value.code


def test_valid_card_round_trip(issuer, verifier):
    text, card = issue(issuer)
    got = verifier.verify(text)
    assert got.card_id == card.card_id and got.card_type == "escort_permit" and got.scope.ward == "paediatrics"
    assert got.face.template_sha256 == card.face.template_sha256


def test_expired_and_not_yet_valid(issuer, trust):
    text, _ = issue(issuer)
    late = CardVerifier(trust, site="ward-7", clock=lambda: NOW + 3600 + 301)
    early = CardVerifier(trust, site="ward-7", clock=lambda: NOW - 301)
    assert code_of(late, text) == "card_expired"
    assert code_of(early, text) == "card_not_yet_valid"
    # Inside the skew both pass.
    CardVerifier(trust, site="ward-7", clock=lambda: NOW + 3600 + 299).verify(text)
    CardVerifier(trust, site="ward-7", clock=lambda: NOW - 299).verify(text)


def test_revoked(issuer, trust):
    text, card = issue(issuer)
    revocations = RevocationList(version=7)
    revocations.revoke(card.card_id)
    v = CardVerifier(trust, revocations, site="ward-7", clock=lambda: NOW)
    with pytest.raises(CredentialError) as e:
        v.verify(text)
    assert e.value.code == "card_revoked" and e.value.details["revocation_list_version"] == 7


def test_type_and_scope(issuer, trust):
    text, _ = issue(issuer)
    assert code_of(CardVerifier(trust, site="ward-7", accepted_types=["health_card"], clock=lambda: NOW),
                   text) == "card_type"
    assert code_of(CardVerifier(trust, site="ward-9", clock=lambda: NOW), text) == "card_scope"
    appt, _ = issue(issuer, card_type="vaccination_appointment", window=(int(NOW) + 7200, int(NOW) + 9000),
                    valid_for_s=86400)
    assert code_of(CardVerifier(trust, site="ward-7", clock=lambda: NOW), appt) == "card_scope"
    CardVerifier(trust, site="ward-7", clock=lambda: NOW + 8000).verify(appt)


def test_unknown_kid_and_bad_signature(issuer, trust):
    stranger = CardIssuer(generate_issuer_key("ES256"), "hospital-a")
    text, _ = issue((stranger, None))
    assert code_of(CardVerifier(trust, site="ward-7", clock=lambda: NOW), text) == "card_kid_unknown"
    # Same kid as a trusted key, wrong key: a forged kid.
    forged = CardIssuer(generate_issuer_key(issuer[0].alg), "hospital-a")
    forged.kid = issuer[0].kid
    text, _ = issue((forged, None))
    assert code_of(CardVerifier(trust, site="ward-7", clock=lambda: NOW), text) == "card_signature"


def test_kid_collision_tries_every_key(issuer):
    other = generate_issuer_key("ES256")
    trust = TrustList()
    trust.add("hospital-b", other.public_key(), kid=issuer[0].kid)  # collides with the real issuer's kid
    trust.add("hospital-a", issuer[1].public_key())
    assert len(trust.candidates(issuer[0].kid)) == 2
    text, _ = issue(issuer)
    assert CardVerifier(trust, site="ward-7", clock=lambda: NOW).verify(text).issuer == "hospital-a"


def test_issuer_name_must_own_the_key(issuer):
    trust = TrustList()
    trust.add("hospital-z", issuer[1].public_key())
    text, _ = issue(issuer)
    assert code_of(CardVerifier(trust, site="ward-7", clock=lambda: NOW), text) == "card_claims"


@pytest.mark.parametrize("text,code", [
    ("HC1:ABC", "card_prefix"),
    ("EHC1:abc", "card_base45"),
    ("EHC1:" + base45.b45encode(b"not zlib").decode(), "card_zlib"),
    ("EHC1:" + base45.b45encode(zlib.compress(b"\x5a\xff")).decode(), "card_cbor"),
    ("EHC1:" + base45.b45encode(zlib.compress(cbor2.dumps([1, 2]))).decode(), "card_cose"),
    ("EHC1:" + base45.b45encode(zlib.compress(cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"", b""])))).decode(),
     "card_cose"),
    ("EHC1:" + "A" * 5000, "card_oversized"),
])
def test_container_errors(verifier, text, code):
    assert code_of(verifier, text) == code


def test_zlib_bomb_is_capped(verifier):
    bomb = zlib.compress(b"\x00" * 10_000_000, 9)  # 10 MB of zeros, ~10 KB compressed
    text = "EHC1:" + base45.b45encode(bomb[:2500]).decode()
    assert code_of(verifier, text) in ("card_oversized", "card_zlib")
    small_bomb = "EHC1:" + base45.b45encode(zlib.compress(b"\x00" * (MAX_COSE_BYTES * 4))).decode()
    assert code_of(verifier, small_bomb) == "card_oversized"


def test_unsupported_alg(verifier, issuer):
    cose = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -37, 4: issuer[0].kid}), {}, b"x", b"sig"]))
    assert code_of(verifier, wrap(cose)) == "card_alg"


def test_typical_cards_fit_qr_version_22(issuer):
    for card_type in ("health_card", "escort_permit", "vaccination_appointment"):
        text, _ = issue(issuer, card_type=card_type, station="vax-station-12", window=(int(NOW), int(NOW) + 900))
        assert qr_version(text) <= 22, (card_type, len(text))


def test_failures_after_the_signature_name_the_card_and_earlier_ones_do_not(issuer, trust):
    text, card = issue(issuer)
    with pytest.raises(CredentialError) as e:
        CardVerifier(trust, site="ward-7", clock=lambda: NOW + 10 * 3600).verify(text)
    assert e.value.code == "card_expired" and e.value.details["card_id"] == card.card_id.hex()
    with pytest.raises(CredentialError) as e:
        CardVerifier(TrustList(), site="ward-7", clock=lambda: NOW).verify(text)
    assert e.value.code == "card_kid_unknown" and "card_id" not in e.value.details


def test_times_beyond_int64_are_refused_not_crashing_consumers(issuer, verifier):
    # Finding 9 of issue 10: a validly signed card with an exp past int64 made DecodeCard answer INTERNAL.
    text, _ = issue(issuer, valid_for_s=2**64)
    with pytest.raises(CredentialError) as e:
        verifier.verify(text)
    assert e.value.code == "card_claims" and "exp" in e.value.message


@pytest.mark.parametrize("overrides, says", [
    ({"holder": b"\x01" * 3}, "holder"),
    ({"holder": b""}, "holder"),
    ({"valid_for_s": 0}, "valid_for_s"),
    ({"valid_for_s": -5}, "valid_for_s"),
    ({"window": (int(NOW) + 600, int(NOW))}, "window"),
    ({"card_id": b"\x02" * 8}, "card_id"),
])
def test_the_issuer_refuses_a_card_the_wire_format_does_not_allow(issuer, overrides, says):
    """`edge card issue --valid-for -5` signed a card that expired before it was issued, and the registry's
    IssueCard took a holder of any length; both go through CardIssuer.issue."""
    with pytest.raises(ValueError, match=says):
        issue(issuer, **overrides)


def test_a_signed_card_whose_holder_is_not_16_bytes_is_refused(issuer, verifier):
    import dataclasses

    _, card = issue(issuer)
    text = issuer[0].sign(dataclasses.replace(card, holder=b"\x01" * 3))
    assert code_of(verifier, text) == "card_claims"


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"\xed\xa0\x80", b"{\"version\": 1,"])
def test_an_unreadable_trust_or_revocation_file_is_a_config_error_naming_it(tmp_path, content):
    from edge.errors import ConfigError

    path = tmp_path / "list.json"
    path.write_bytes(content)
    for load in (TrustList.load, RevocationList.load):
        with pytest.raises(ConfigError) as caught:
            load(path)
        assert str(path) in caught.value.message


def test_a_trust_list_saved_with_a_byte_order_mark_still_loads(tmp_path, trust):
    import json

    path = tmp_path / "trust.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(trust.to_json()).encode())
    assert TrustList.load(path).to_json() == trust.to_json()
