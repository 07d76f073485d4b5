"""Escort permits at the registry, on both storage backends over mutual TLS (issue 11): admissions from the
hospital's system, every issuance rule and refusal reason, the events that end permits, and roles."""

from __future__ import annotations

import hashlib
import json
import time

import grpc
import pytest

from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
from edge.credential.trust import RevocationList
from edge.credential.verifier import parse_claims
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from registry.escort import EscortPolicy
from registry.service import RegistryServer, RegistryState, TLSFiles
from registry.storage import open_storage

from .conftest import admin_stub, register

pytestmark = pytest.mark.slow
FACE = hashlib.sha256(b"escort template").digest()


def stub_as(port: int, pki, name: str) -> rpb_grpc.RegistryStub:
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / f"{name}.key").read_bytes(),
                                         (pki / f"{name}.pem").read_bytes())
    return rpb_grpc.RegistryStub(grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[
        ("grpc.ssl_target_name_override", "registry")]))


@pytest.fixture
def registry(tmp_path, db_url, pki):
    state = RegistryState.open(open_storage(db_url), tmp_path / "state")
    state.escort_policies = {"ward-7": EscortPolicy(max_escorts=1, allow_swap=True, max_days=7),
                             "icu": EscortPolicy(max_escorts=2, allow_swap=False, require_condition=True,
                                                 require_adult=False)}
    server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    port = server.start("127.0.0.1:0")
    yield state, stub_as(port, pki, "hospital-feed"), port
    server.stop(0.5)


def refusal(call) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code().name, dict(e.value.trailing_metadata())["edge-reason"]


def card_of(text: str):
    return parse_claims(loads_exact(parse_cose_sign1(unwrap(text)).payload), kid=b"", alg=-7)


def revoked(state) -> RevocationList:
    return RevocationList.from_json(json.loads(state.storage.document("revocations")[1]))


def test_a_permit_is_scoped_to_the_patients_ward_and_stay(registry):
    state, hospital, _ = registry
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0001", site="ward-7", ward="paediatrics",
                                                  expected_days=3), timeout=10)
    reply = hospital.IssueEscortPermit(rpb.IssueEscortPermitRequest(patient_id="pat-0001", template_sha256=FACE,
                                                                    age_band="adult"), timeout=10)
    card = card_of(reply.qr_text)
    assert card.card_type == "escort_permit" and card.scope.ward == "paediatrics" and card.scope.site == "ward-7"
    assert card.age_band == "adult" and abs(card.expires_at - (time.time() + 3 * 86400)) < 60  # the stay
    condition = int(time.time()) + 86400
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0002", site="ward-7", ward="paediatrics",
                                                  expected_days=30), timeout=10)
    short = hospital.IssueEscortPermit(rpb.IssueEscortPermitRequest(
        patient_id="pat-0002", template_sha256=FACE, age_band="adult", condition_until=condition), timeout=10)
    assert card_of(short.qr_text).expires_at == condition  # the health condition ends it first
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0003", site="ward-7", ward="paediatrics",
                                                  expected_days=30), timeout=10)
    capped = hospital.IssueEscortPermit(rpb.IssueEscortPermitRequest(patient_id="pat-0003", template_sha256=FACE,
                                                                     age_band="adult"), timeout=10)
    assert abs(card_of(capped.qr_text).expires_at - (time.time() + 7 * 86400)) < 60  # the site's maximum


def test_every_refusal_has_its_reason(registry):
    state, hospital, _ = registry
    permit = rpb.IssueEscortPermitRequest
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-none", template_sha256=FACE,
                                                             age_band="adult"), timeout=10)) == \
        ("FAILED_PRECONDITION", "patient_not_admitted")
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0100", site="ward-7", ward="paediatrics",
                                                  expected_days=2), timeout=10)
    assert refusal(lambda: hospital.AdmitPatient(rpb.AdmitPatientRequest(
        patient_id="pat-0100", site="ward-7", ward="paediatrics", expected_days=2), timeout=10)) == \
        ("FAILED_PRECONDITION", "already_admitted")
    assert refusal(lambda: hospital.AdmitPatient(rpb.AdmitPatientRequest(
        patient_id="Jane Doe!", site="ward-7", ward="x", expected_days=2), timeout=10)) == \
        ("INVALID_ARGUMENT", "invalid_request")  # a name is not a pseudonymous id
    # A card for site "*" is good at every site's gates: a patient is admitted to one (until 2026-12-07 the
    # feed could admit to "*", and the escort's permit then opened every site's gates of a ward so named).
    for site in ("*", "", "x" * 129):
        assert refusal(lambda site=site: hospital.AdmitPatient(rpb.AdmitPatientRequest(
            patient_id="pat-0101", site=site, ward="paediatrics", expected_days=2), timeout=10)) == \
            ("INVALID_ARGUMENT", "invalid_request")
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0100", template_sha256=FACE,
                                                             age_band="minor"), timeout=10)) == \
        ("FAILED_PRECONDITION", "escort_not_adult")
    assert refusal(lambda: hospital.IssueEscortPermit(permit(
        patient_id="pat-0100", template_sha256=FACE, age_band="adult", condition_until=int(time.time()) - 5),
        timeout=10)) == ("FAILED_PRECONDITION", "condition_expired")
    first = hospital.IssueEscortPermit(permit(patient_id="pat-0100", template_sha256=FACE, age_band="adult"),
                                       timeout=10)
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0100", template_sha256=FACE,
                                                             age_band="adult"), timeout=10)) == \
        ("FAILED_PRECONDITION", "escort_limit")  # one patient, one escort
    swapped = hospital.IssueEscortPermit(permit(patient_id="pat-0100", template_sha256=FACE, age_band="adult",
                                                replace=True), timeout=10)
    assert list(swapped.replaced) == [first.card_id]
    assert revoked(state).is_revoked(bytes.fromhex(first.card_id))  # changing the escort revokes the old permit
    # The ICU: two escorts, no swaps, an attested condition required, minors allowed.
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0200", site="icu", ward="icu-1", expected_days=5),
                          timeout=10)
    turns_18 = int(time.time()) + 2 * 86400  # the escort leaves the minor band in two days
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0200", template_sha256=FACE,
                                                             age_band="minor", age_band_until=turns_18),
                                                      timeout=10)) == ("FAILED_PRECONDITION", "condition_required")
    until = int(time.time()) + 4 * 86400
    # A minor's band ends: without the day, a permit could outlive it (registry/bands.py).
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0200", template_sha256=FACE,
                                                             age_band="minor", condition_until=until),
                                                      timeout=10)) == ("INVALID_ARGUMENT", "age_band_end_required")
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0200", template_sha256=FACE,
                                                             age_band="adult", age_band_until=turns_18,
                                                             condition_until=until), timeout=10)) == \
        ("INVALID_ARGUMENT", "age_band_end_invalid")
    for _ in range(2):
        issued = hospital.IssueEscortPermit(permit(patient_id="pat-0200", template_sha256=FACE, age_band="minor",
                                                   age_band_until=turns_18, condition_until=until), timeout=10)
        assert issued.expires_at == turns_18  # before the stay, the condition and the site's maximum
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0200", template_sha256=FACE,
                                                             condition_until=until, replace=True), timeout=10)) == \
        ("FAILED_PRECONDITION", "swap_forbidden")


def test_discharge_and_transfer_end_the_permits_through_the_revocation_list(registry):
    state, hospital, _ = registry
    permit = rpb.IssueEscortPermitRequest
    for patient in ("pat-0300", "pat-0301"):
        hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id=patient, site="ward-7", ward="paediatrics",
                                                      expected_days=2), timeout=10)
    a = hospital.IssueEscortPermit(permit(patient_id="pat-0300", template_sha256=FACE, age_band="adult"), timeout=10)
    b = hospital.IssueEscortPermit(permit(patient_id="pat-0301", template_sha256=FACE, age_band="adult"), timeout=10)
    version = revoked(state).version
    discharged = hospital.DischargePatient(rpb.DischargePatientRequest(patient_id="pat-0300"), timeout=10)
    assert list(discharged.ended_permits) == [a.card_id] and discharged.revocation_list_version == version + 1
    moved = hospital.TransferPatient(rpb.TransferPatientRequest(patient_id="pat-0301", ward="oncology"), timeout=10)
    assert list(moved.ended_permits) == [b.card_id] and moved.ward == "oncology"
    assert all(revoked(state).is_revoked(bytes.fromhex(c)) for c in (a.card_id, b.card_id))
    assert refusal(lambda: hospital.IssueEscortPermit(permit(patient_id="pat-0300", template_sha256=FACE,
                                                             age_band="adult"), timeout=10)) == \
        ("FAILED_PRECONDITION", "patient_not_admitted")
    new = hospital.IssueEscortPermit(permit(patient_id="pat-0301", template_sha256=FACE, age_band="adult"),
                                     timeout=10)
    assert card_of(new.qr_text).scope.ward == "oncology"  # after the transfer, a permit for the new ward


def test_a_stay_longer_than_expected_is_updated_and_gets_an_escort_again(registry):
    """Permits run no longer than the expected stay. A patient kept in past the first estimate had no way to an
    escort (admission_ended) short of a false discharge and a new admission, which ends every permit;
    UpdateAdmission moves the expected end, and only for a patient still admitted."""
    state, hospital, _ = registry
    permit = rpb.IssueEscortPermitRequest(patient_id="pat-0500", template_sha256=FACE, age_band="adult")
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0500", site="ward-7", ward="paediatrics",
                                                  expected_days=1.5 / 86400), timeout=10)  # 1.5 seconds
    first = hospital.IssueEscortPermit(permit, timeout=10)
    assert first.expires_at <= time.time() + 2  # no longer than the stay
    time.sleep(1.6)
    assert refusal(lambda: hospital.IssueEscortPermit(permit, timeout=10)) == ("FAILED_PRECONDITION",
                                                                               "admission_ended")
    version = revoked(state).version
    reply = hospital.UpdateAdmission(rpb.UpdateAdmissionRequest(patient_id="pat-0500", expected_days=3), timeout=10)
    assert reply.ward == "paediatrics" and not reply.ended_permits and reply.revocation_list_version == version
    second = hospital.IssueEscortPermit(permit, timeout=10)  # the first one has lapsed: not counted
    assert 3 * 86400 - 60 <= second.expires_at - time.time() <= 3 * 86400
    assert state.storage.admission("pat-0500").admitted < time.time() - 1.5  # the same stay, not a new one
    for request, code in [(rpb.UpdateAdmissionRequest(patient_id="pat-0500", expected_days=0), "invalid_request"),
                          (rpb.UpdateAdmissionRequest(patient_id="pat-0500", expected_days=400), "invalid_request"),
                          (rpb.UpdateAdmissionRequest(patient_id="pat-0599", expected_days=2), "patient_not_admitted")]:
        assert refusal(lambda r=request: hospital.UpdateAdmission(r, timeout=10))[1] == code
    hospital.DischargePatient(rpb.DischargePatientRequest(patient_id="pat-0500"), timeout=10)
    assert refusal(lambda: hospital.UpdateAdmission(rpb.UpdateAdmissionRequest(
        patient_id="pat-0500", expected_days=2), timeout=10)) == ("FAILED_PRECONDITION", "patient_not_admitted")


def test_roles_come_from_the_certificate(registry, pki, tmp_path):
    state, hospital, port = registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    device = stub_as(port, pki, "dev-a")
    admit = rpb.AdmitPatientRequest(patient_id="pat-0400", site="ward-7", ward="paediatrics", expected_days=1)
    with pytest.raises(grpc.RpcError) as e:
        device.AdmitPatient(admit, timeout=10)  # a device cannot admit ...
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        device.IssueEscortPermit(rpb.IssueEscortPermitRequest(patient_id="pat-0400"), timeout=10)  # ... or issue
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        device.UpdateAdmission(rpb.UpdateAdmissionRequest(patient_id="pat-0400", expected_days=9), timeout=10)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED  # ... or change a stay
    with pytest.raises(grpc.RpcError) as e:
        device.RevokeCard(rpb.RevokeCardRequest(card_id="ab" * 16), timeout=10)  # ... or revoke
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as e:
        hospital.IngestTokens(rpb.IngestTokensRequest(tokens=[]), timeout=10)  # the hospital delivers no tokens
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    admin.AdmitPatient(admit, timeout=10)  # an operator may stand in for the feed
    assert state.storage.admission("pat-0400").ward == "paediatrics"


class OverrideDevice:
    """A registered device of ward-7, a staff card the registry issued, and tokens as that device signs them."""

    def __init__(self, registry, pki, tmp_path) -> None:
        from edge.registry_client.transport import GrpcTransport
        from edge.security.keys import DeviceKey

        _, _, port = registry
        self.admin = admin_stub(port, pki)
        register(self.admin, "dev-a", tmp_path / "a", "ward-7")
        self.key = DeviceKey.load_or_create(tmp_path / "a")
        self.staff = self.admin.IssueCard(rpb.IssueCardRequest(card_type="staff_card", site="ward-7",
                                                               template_sha256=FACE), timeout=10).card_id
        self.transport = GrpcTransport(f"127.0.0.1:{port}", tls=(pki / "ca.pem", pki / "dev-a.pem",
                                                                 pki / "dev-a.key"), server_name="registry")

    def token(self, person: str, claims: dict, at: float | None = None) -> bytes:
        from .test_ingest_rules import make_token

        return make_token(self.key, "dev-a", card=person, now=at, claims=claims)

    def override(self, person: str, refused_ref: str, staff_card: str | None = None, at: float | None = None) -> bytes:
        from edge.security.tokens import CLAIM_CHECKS, CLAIM_DECISION, CLAIM_REASONS

        link = {"refused": refused_ref, "staff_card": staff_card or self.staff, "reason": "face_not_recognised"}
        return self.token(person, {CLAIM_DECISION: "ALLOW", CLAIM_REASONS: ["STAFF_OVERRIDE"],
                                   CLAIM_CHECKS: {"override": link}}, at)

    def delivered(self, tokens: list[bytes]) -> list[tuple[str, str]]:
        return [(r.status, r.reason) for r in self.transport.ingest(tokens)]

    def history(self, person: str) -> list[tuple[str, list[str]]]:
        entries = self.admin.AuditHistory(rpb.AuditHistoryRequest(card_id=person), timeout=10).entries
        return [(e.decision, list(e.reasons)) for e in entries]


def test_override_tokens_need_a_real_staff_card_and_a_real_refusal_and_count_once(registry, pki, tmp_path):
    from edge.security.tokens import CLAIM_DECISION, CLAIM_REASONS

    device = OverrideDevice(registry, pki, tmp_path)
    person = "9f" * 16
    refused = device.token(person, {CLAIM_DECISION: "DENY", CLAIM_REASONS: ["FACE_MISMATCH"]})
    refused_id = loads_exact(parse_cose_sign1(refused).payload)[7].hex()
    assert device.delivered([device.override(person, refused_id, staff_card="ab" * 16),  # a card never issued
                             device.override(person, "cd" * 16),  # a refusal that never happened
                             refused, device.override(person, refused_id),  # the real thing, in one delivery
                             device.override(person, refused_id)]) == [  # a second override of the same refusal
        ("rejected", "override_invalid"), ("rejected", "override_invalid"), ("stored", ""), ("stored", ""),
        ("rejected", "override_used")]
    assert device.history(person) == [("DENY", ["FACE_MISMATCH"]), ("ALLOW", ["STAFF_OVERRIDE"])]
    device.transport.close()


def test_a_card_refused_on_every_visit_can_be_overridden_on_each(registry, pki, tmp_path):
    """A RETRY has no token, so its override names the card: once per card and gate within
    CARD_OVERRIDE_INTERVAL_S, not once ever (a patient the camera cannot take is refused on every visit)."""
    from edge.gate.overrides import CARD_OVERRIDE_INTERVAL_S

    device = OverrideDevice(registry, pki, tmp_path)
    person = "9e" * 16
    now = time.time()
    assert device.delivered([device.override(person, f"card:{person}", at=now - 86400)]) == [("stored", "")]
    # this visit; then a second on the same card at once
    assert device.delivered([device.override(person, f"card:{person}", at=now),
                             device.override(person, f"card:{person}", at=now + 60)]) == [
        ("stored", ""), ("rejected", "override_used")]
    late = device.override(person, f"card:{person}", at=now - 86400 + CARD_OVERRIDE_INTERVAL_S / 2)
    assert device.delivered([late]) == [("rejected", "override_used")]  # delivered late, close to yesterday's
    assert device.history(person) == [("ALLOW", ["STAFF_OVERRIDE"])] * 2
    device.transport.close()


def test_a_permit_is_refused_once_the_expected_stay_has_passed(registry):
    from registry.escort import EscortRefused, EscortRules

    state, hospital, _ = registry
    hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0500", site="ward-7", ward="paediatrics",
                                                  expected_days=1), timeout=10)
    rules = EscortRules(state, state.escort_policies)
    with pytest.raises(EscortRefused) as e:  # two days later, nobody updated the admission
        rules.issue(patient_id="pat-0500", template_sha256=FACE, model_id="m", age_band="adult",
                    condition_until=None, now=time.time() + 2 * 86400)
    assert e.value.code == "admission_ended"


def test_escort_policies_load_from_toml_and_name_a_bad_key(tmp_path):
    from edge.cli.registry import load_escort_policies
    from edge.errors import ConfigError

    good = tmp_path / "policy.toml"
    good.write_text("[default]\nmax_escorts = 1\nmax_days = 7\n"
                    "[sites.icu]\nmax_escorts = 2\nrequire_condition = true\n")
    policies = load_escort_policies(good)
    assert policies["icu"] == EscortPolicy(max_escorts=2, max_days=7, require_condition=True)
    assert policies["*"] == EscortPolicy(max_escorts=1, max_days=7)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sites.icu]\nmax_escort = 2\n")
    with pytest.raises(ConfigError) as e:
        load_escort_policies(bad)
    assert "sites.icu" in e.value.message and "max_escort" in e.value.message
    for line, says in (('allow_swap = "false"', "allow_swap must be true or false"),  # a true string
                       ("max_escorts = 1.5", "max_escorts must be a whole number"),
                       ('max_days = "7"', "max_days must be a number"), ("require_adult = 1", "true or false"),
                       ("max_days = nan", "max_days in (0, 366]"), ("max_days = inf", "max_days in (0, 366]")):
        bad.write_text(f"[sites.icu]\n{line}\n")
        with pytest.raises(ConfigError) as e:
            load_escort_policies(bad)
        assert "sites.icu" in e.value.message and says in e.value.message, line
    for text, key in (("sites = 3\n", "sites"), ("default = 5\n", "default"), ("[sites]\nicu = 2\n", "sites.icu"),
                      ("[defaults]\nmax_days = 3\n", "defaults")):  # a table that is not one, or misnamed
        bad.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_escort_policies(bad)
        assert e.value.details["key"] == key, text


def test_a_site_no_gate_is_registered_for_is_said_in_the_log(registry, pki, tmp_path, caplog):
    """Site ids are free text: a typo ("st-mray") gives permits and cards every gate refuses (card_scope),
    found only when a person is turned away. The registry still issues them (a site's gates may be
    registered later) and says so in its log, naming the site."""
    import logging

    state, hospital, port = registry
    register(admin_stub(port, pki), "gate-w7", tmp_path / "keys", "ward-7")
    with caplog.at_level(logging.WARNING, logger="registry.service"):
        hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0700", site="ward-7", ward="w1",
                                                      expected_days=2), timeout=10)
        assert not [r for r in caplog.records if "no device" in r.getMessage()]
        hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id="pat-0701", site="st-mray", ward="w1",
                                                      expected_days=2), timeout=10)
        admin_stub(port, pki).IssueCard(rpb.IssueCardRequest(card_type="health_card", site="st-mray",
                                                             template_sha256=FACE, age_band="adult"), timeout=10)
    warned = [r for r in caplog.records if "no device" in r.getMessage()]
    assert len(warned) == 2 and all(r.fields["site"] == "st-mray" for r in warned)  # type: ignore[attr-defined]
