"""Vaccination records at the registry, on both storage backends (issue 12): a record token becomes a FHIR
Immunization (validated), bound to the ALLOW it follows, once per appointment; a person's history is a FHIR
Bundle for the hospital system; no face template is kept for a child; delegations are the hospital's to issue."""

from __future__ import annotations

import hashlib
import json
import time

import grpc
import numpy as np
import pytest

from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.security.keys import DeviceKey
from edge.security.sealing import seal
from edge.security.tokens import CLAIM_CHECKS, CLAIM_REASONS

from .conftest import admin_stub, register
from .test_escort import stub_as
from .test_ingest_rules import device_transport, make_token

#: When the children of these tests leave the child band (registry/bands.py).
BAND_END = int(time.time()) + 5 * 365 * 86400

pytestmark = pytest.mark.slow
FACE = hashlib.sha256(b"guardian").digest()
PERSON = hashlib.sha256(b"the child").digest()[:16]  # the holder pseudonym an appointment names
RECORD = {"vaccine": "208", "lot": "FK1234", "expiry": "2099-12-31", "dose": 1, "series": 2, "route": "IM",
          "site": "LD", "performer": "nurse-17"}


@pytest.fixture
def registry(tls_registry, tmp_path, pki):
    state, port = tls_registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    return state, port, admin, DeviceKey.load_or_create(tmp_path / "a")


def record_token(key, appointment: str, verification: str, **changes) -> bytes:
    record = {**RECORD, "verification": verification, "occurred": int(time.time()), **changes}
    return make_token(key, "dev-a", card=appointment, claims={CLAIM_REASONS: ["VACCINATION_RECORD"],
                                                              CLAIM_CHECKS: {"record": record}})


def token_id(token: bytes) -> str:
    from edge.credential.codec import loads_exact, parse_cose_sign1

    return loads_exact(parse_cose_sign1(token).payload)[7].hex()


def test_a_record_becomes_one_valid_fhir_immunization(registry, pki):
    state, port, admin, key = registry
    infant = admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site="ward-7", holder=PERSON,
                                                  template_sha256=FACE, age_band="child",
                                                  age_band_until=BAND_END), timeout=10)
    allow = make_token(key, "dev-a", card=infant.card_id)
    transport = device_transport(port, pki, "dev-a")
    first = record_token(key, infant.card_id, token_id(allow))
    results = transport.ingest([
        record_token(key, infant.card_id, "ef" * 16),  # no such verification
        allow,
        record_token(key, infant.card_id, token_id(allow), vaccine="999"),  # a code not on the list
        record_token(key, infant.card_id, token_id(allow), dose=3),  # dose 3 of a 2-dose series
        record_token(key, infant.card_id, token_id(allow), occurred=int(time.time()) - 3 * 365 * 86400),  # clock
        first,
        record_token(key, infant.card_id, token_id(allow))])  # a second record, same appointment
    assert [(r.status, r.reason) for r in results] == [
        ("rejected", "record_unbound"), ("stored", ""), ("rejected", "vaccine_unknown"),
        ("rejected", "dose_out_of_series"), ("rejected", "occurred_before_verification"), ("stored", ""),
        ("rejected", "appointment_used")]
    assert transport.ingest([first])[0].status == "duplicate"  # redelivery: stored once
    resource = state.storage.immunization_for(infant.card_id)
    from fhir.resources.R4B.immunization import Immunization

    parsed = Immunization.model_validate(resource)  # what is stored is a valid FHIR Immunization
    assert parsed.status == "completed" and parsed.lotNumber == "FK1234"
    assert parsed.vaccineCode.coding[0].code == "208" and parsed.protocolApplied[0].doseNumberPositiveInt == 1
    assert "name" not in json.dumps(resource) and "birthDate" not in json.dumps(resource)  # pseudonyms only
    hospital = stub_as(port, pki, "hospital-feed")
    bundle = json.loads(hospital.ImmunizationHistory(rpb.ImmunizationHistoryRequest(card_id=infant.card_id),
                                                     timeout=10).json)
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == token_id(first)
    with pytest.raises(grpc.RpcError) as e:  # a device may not read anyone's history
        stub_as(port, pki, "dev-a").ImmunizationHistory(rpb.ImmunizationHistoryRequest(card_id=infant.card_id),
                                                        timeout=10)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_no_template_for_a_child_and_delegations_name_the_child(registry, pki):
    state, port, admin, _ = registry
    infant = admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site="ward-7", holder=PERSON,
                                                  template_sha256=FACE, age_band="child",
                                                  age_band_until=BAND_END), timeout=10)
    vector = np.random.default_rng(2).normal(size=128).astype("<f4")
    vector = (vector / np.linalg.norm(vector)).astype("<f4")
    with pytest.raises(grpc.RpcError) as e:
        admin.StoreTemplate(rpb.StoreTemplateRequest(card_id=infant.card_id, model_id="sface-2021dec-fp32",
                                                     sealed_template=seal(state.template_public_key, vector.tobytes(),
                                                                          infant.card_id.encode())), timeout=10)
    assert dict(e.value.trailing_metadata())["edge-reason"] == "no_child_template"
    hospital = stub_as(port, pki, "hospital-feed")
    delegation = hospital.IssueDelegation(rpb.IssueDelegationRequest(
        child_card_id=infant.card_id, template_sha256=FACE, valid_until=int(time.time()) + 86400), timeout=10)
    from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
    from edge.credential.verifier import parse_claims

    card = parse_claims(loads_exact(parse_cose_sign1(unwrap(delegation.qr_text)).payload), kid=b"", alg=-7)
    assert card.card_type == "delegation" and card.acts_for.hex() == infant.card_id
    adult = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE,
                                                 age_band="adult"), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        hospital.IssueDelegation(rpb.IssueDelegationRequest(child_card_id=adult.card_id, template_sha256=FACE,
                                                            valid_until=int(time.time()) + 86400), timeout=10)
    assert dict(e.value.trailing_metadata())["edge-reason"] == "holder_is_adult"
    with pytest.raises(grpc.RpcError) as e:  # a device cannot issue delegations
        stub_as(port, pki, "dev-a").IssueDelegation(rpb.IssueDelegationRequest(child_card_id=infant.card_id),
                                                    timeout=10)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_issuance_refuses_what_the_card_format_does_not_allow(registry, pki):
    """A 16-byte holder pseudonym and a positive lifetime are part of the card format (edge/credential): the
    registry signed cards with a 3-byte holder, and one that expired before it was issued."""
    _, port, admin, _ = registry
    hospital = stub_as(port, pki, "hospital-feed")
    infant = admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site="ward-7", holder=PERSON,
                                                  template_sha256=FACE, age_band="child",
                                                  age_band_until=BAND_END), timeout=10)
    refused = [
        lambda: admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE,
                                                     holder=b"\x01" * 3), timeout=10),
        lambda: admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE,
                                                     valid_for_s=-60), timeout=10),
        lambda: hospital.IssueDelegation(rpb.IssueDelegationRequest(
            child_card_id=infant.card_id, template_sha256=FACE, valid_until=int(time.time()) + 86400,
            holder=b"\x01" * 3), timeout=10),
    ]
    for call in refused:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()


def test_a_card_names_a_face_model_the_gates_know_and_a_delegation_a_guardian_card_the_registry_issued(
        registry, pki):
    """A card committing to a model no gate knows (a typo in model_id) was signed, and then refused at every
    gate as TEMPLATE_MISMATCH; a malformed guardian card id was dropped without a word, so revoking the
    guardian's card no longer ended the delegation; a delegation for a revoked child's card was signed; an
    appointment without a holder pseudonym got a random one, so ImmunizationHistory never found its record
    with the person's others."""
    from .test_escort import refusal

    state, port, admin, _ = registry
    hospital = stub_as(port, pki, "hospital-feed")
    infant = admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site="ward-7", holder=PERSON,
                                                  template_sha256=FACE, age_band="child",
                                                  age_band_until=BAND_END), timeout=10)
    mother = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE,
                                                  model_id="sface-2021dec-fp32+dlib-resnet-v1"), timeout=10)
    assert state.storage.card(mother.card_id).model_id == "sface-2021dec-fp32+dlib-resnet-v1"
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0900", site="ward-7", ward="w1", expected_days=2),
                          timeout=10)
    later = int(time.time()) + 86400
    for call in (
            lambda: admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE,
                                                         model_id="sface-2021dec-fp16"), timeout=10),
            lambda: hospital.IssueEscortPermit(rpb.IssueEscortPermitRequest(
                patient_id="pat-0900", template_sha256=FACE, age_band="adult", model_id="sface+dlib"), timeout=10),
            lambda: hospital.IssueDelegation(rpb.IssueDelegationRequest(
                child_card_id=infant.card_id, template_sha256=FACE, valid_until=later, model_id="arcface"),
                timeout=10)):
        assert refusal(call) == ("INVALID_ARGUMENT", "model_unknown")
    # An appointment without its person: its vaccination could never be found with the person's others.
    assert refusal(lambda: admin.IssueCard(rpb.IssueCardRequest(
        card_type="vaccination_appointment", site="ward-7", template_sha256=FACE, age_band="adult"),
        timeout=10)) == ("INVALID_ARGUMENT", "holder_required")
    # A card without a site is refused at every gate (card_scope): refused when it is issued instead.
    with pytest.raises(grpc.RpcError) as e:
        admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="", template_sha256=FACE,
                                             age_band="adult"), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "site" in e.value.details()
    for guardian in (mother.card_id.upper(), "ab" * 16):
        with pytest.raises(grpc.RpcError) as e:
            hospital.IssueDelegation(rpb.IssueDelegationRequest(
                child_card_id=infant.card_id, template_sha256=FACE, valid_until=later, guardian_card_id=guardian),
                timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, guardian
    delegation = hospital.IssueDelegation(rpb.IssueDelegationRequest(
        child_card_id=infant.card_id, template_sha256=FACE, valid_until=later, guardian_card_id=mother.card_id),
        timeout=10)
    from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
    from edge.credential.verifier import parse_claims

    card = parse_claims(loads_exact(parse_cose_sign1(unwrap(delegation.qr_text)).payload), kid=b"", alg=-7)
    assert card.guardian_card.hex() == mother.card_id
    # A guardian whose own card was withdrawn: a delegation resting on it would be refused at every station.
    father = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE),
                             timeout=10)
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=father.card_id, reason="lost"), timeout=10)
    assert refusal(lambda: hospital.IssueDelegation(rpb.IssueDelegationRequest(
        child_card_id=infant.card_id, template_sha256=FACE, valid_until=later, guardian_card_id=father.card_id),
        timeout=10)) == ("FAILED_PRECONDITION", "card_ended")
    # A delegation for a child's card that was withdrawn (a new one issued): named, not signed in vain.
    admin.RevokeCard(rpb.RevokeCardRequest(card_id=infant.card_id, reason="reissued"), timeout=10)
    assert refusal(lambda: hospital.IssueDelegation(rpb.IssueDelegationRequest(
        child_card_id=infant.card_id, template_sha256=FACE, valid_until=later), timeout=10)) == \
        ("FAILED_PRECONDITION", "card_ended")


def test_a_child_or_minor_card_ends_when_its_band_does(registry, pki):
    """A card says "child" or "minor", never a birth date; issued for a year it outlived the band: a
    14-year-old still needed a guardian at every station and could not be enrolled (no child templates)."""
    from .test_escort import refusal

    _, _, admin, _ = registry
    now = int(time.time())
    turns_14 = now + 30 * 86400

    def issue(band, until):
        return admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=FACE,
                                                    age_band=band, age_band_until=until,
                                                    valid_for_s=365 * 86400), timeout=10)

    assert issue("child", turns_14).expires_at == turns_14
    assert issue("minor", now + 3 * 365 * 86400).expires_at <= now + 365 * 86400 + 5  # the year asked for
    assert issue("adult", 0).expires_at >= now + 365 * 86400 - 5
    assert refusal(lambda: issue("child", 0)) == ("INVALID_ARGUMENT", "age_band_end_required")
    assert refusal(lambda: issue("minor", now - 86400)) == ("INVALID_ARGUMENT", "age_band_ended")
    assert refusal(lambda: issue("adult", turns_14)) == ("INVALID_ARGUMENT", "age_band_end_invalid")


def test_an_appointment_card_from_the_registry_carries_its_window(registry):
    """The registry could not issue an appointment with its slot: every appointment card it issued was good
    at any hour of its year."""
    from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
    from edge.credential.verifier import parse_claims

    _, _, admin, _ = registry
    start = int(time.time()) + 3600

    def issue(window_start, window_end):
        return admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site="ward-7", holder=PERSON,
                                                    template_sha256=FACE, age_band="adult", window_start=window_start,
                                                    window_end=window_end), timeout=10)

    card = parse_claims(loads_exact(parse_cose_sign1(unwrap(issue(start, start + 1800).qr_text)).payload),
                        kid=b"", alg=-7)
    assert card.scope.window == (start, start + 1800)
    with pytest.raises(grpc.RpcError) as e:
        issue(start, 0)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for window in ((start + 10, start), (start - 7200, start - 3600)):  # inverted, already over
        with pytest.raises(grpc.RpcError) as e:
            issue(*window)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, window


def test_a_vaccine_from_a_sites_own_list_is_filed_under_the_name_its_station_gave():
    from registry.vaccination import immunization

    record = {**RECORD, "vaccine": "313", "vaccine_display": "COVID-19, mRNA, 2024-2025 formula",
              "verification": "ab" * 16, "occurred": int(time.time())}
    resource = immunization(record, holder="cd" * 16, appointment="ef" * 16, device_id="dev-a", record_id="01" * 16)
    assert resource["vaccineCode"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/cvx", "code": "313",
                                                    "display": "COVID-19, mRNA, 2024-2025 formula"}
