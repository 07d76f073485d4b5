"""``edge demo --scenario vaccination``: a guardian, an infant and a teenager at a vaccination station, through
the real embedded registry and a real daemon, every call over mutual TLS.

Steps: an infant's appointment card (age band child: no face template may exist for it); the guardian's
delegation for the infant; the guardian verifies for the infant (the station's app sends both codes); the
vaccination is recorded, signed, delivered, and stored at the registry as a FHIR Immunization; a second record
for the same appointment is refused; a 16-year-old verifies alone; an expired delegation is refused.

The shared data has one live video, so the same recorded person plays the guardian and the teenager; their
cards and enrolled templates are their own records all the same.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import grpc

from edge.cli.common import EXIT_ERROR, EXIT_OK, EXIT_SETUP, fail
from edge.cli.demo_site import (
    Scene,
    as_the_gate_advises,
    channel,
    has_templates,
    holder_face,
    open_scenario,
    wait_until,
)

SITE = "st-mary-vaccination"
YEAR_S = 365 * 86400


def run(args: argparse.Namespace) -> int:
    from edge.assembly import MODEL_ID
    from edge.demo import speaker_frames, write_scene
    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb
    from edge.security.sealing import seal
    from edge.server.daemon import EdgeDaemon

    opened = open_scenario(args, "edge-vaccination-",
                           {"admin": None, "hospital-ehr": "hospital", "station-app": "controller"}, ["vax-desk-1"])
    if opened is None:
        return EXIT_SETUP
    data, steps, site = opened
    work, pki, state = site.work, site.pki, site.state
    admin, hospital = site.registry("admin"), site.registry("hospital-ehr")
    daemon: EdgeDaemon | None = None
    try:
        face, commitment = holder_face(data)

        def store_template(card_id: str) -> str:
            sealed = seal(state.template_public_key, face.astype("<f4").tobytes(), card_id.encode())
            try:
                admin.StoreTemplate(rpb.StoreTemplateRequest(card_id=card_id, sealed_template=sealed,
                                                             model_id=MODEL_ID), timeout=10)
                return "stored"
            except grpc.RpcError as exc:
                return dict(exc.trailing_metadata() or ()).get("edge-reason", exc.code().name)

        # 1. The infant's appointment: age band "child"; no face template may be kept for it.
        # Each appointment names its person by the pseudonym the hospital system keeps for them.
        infant = admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site=SITE,
                                                      holder=os.urandom(16), template_sha256=commitment,
                                                      age_band="child",
                                                      age_band_until=int(time.time()) + 4 * YEAR_S,
                                                      valid_for_s=86400), timeout=10)
        refused = store_template(infant.card_id)
        steps.record("no_infant_template", None, [refused], refused == "no_child_template")
        # 2. The guardian's delegation for the infant (the guardian's own enrolled face), and an expired one.
        delegation = hospital.IssueDelegation(rpb.IssueDelegationRequest(
            child_card_id=infant.card_id, template_sha256=commitment, model_id=MODEL_ID,
            valid_until=int(time.time()) + 86400), timeout=10)
        lapses_at = int(time.time()) + 2
        lapsing = hospital.IssueDelegation(rpb.IssueDelegationRequest(
            child_card_id=infant.card_id, template_sha256=commitment, model_id=MODEL_ID, valid_until=lapses_at),
            timeout=10)
        teen = admin.IssueCard(rpb.IssueCardRequest(card_type="vaccination_appointment", site=SITE,
                                                    holder=os.urandom(16), template_sha256=commitment,
                                                    age_band="minor",
                                                    age_band_until=int(time.time()) + 2 * YEAR_S,
                                                    valid_for_s=86400), timeout=10)
        stored = [store_template(c) for c in (delegation.card_id, lapsing.card_id, teen.card_id)]
        steps.record("delegation_issued", None, [], stored == ["stored"] * 3, delegation=delegation.card_id)

        scene = write_scene(work / "scene-face", None, speaker_frames(data))
        # A 1 s clock tolerance so that the delegation made to lapse in 2 s is seen to lapse (default 300 s).
        daemon = site.start_gate("vax-desk-1", {"id": SITE},
                                 {"accepted_types": ["vaccination_appointment", "health_card"], "clock_skew_s": 1},
                                 Scene(scene), sync_interval_s=1, label="vaccination demo")
        wait_until(has_templates(daemon, 3), 20)
        station = channel(daemon.port or 0, pki, "station-app", "edge-device")
        stub = pb_grpc.VerificationServiceStub(station)

        def verify(card: str, delegation_text: str = "") -> Any:
            return as_the_gate_advises(lambda: stub.Verify(pb.VerifyRequest(
                nonce=os.urandom(16), card_text=card, delegation_text=delegation_text), timeout=60))

        def names(reply: Any) -> tuple[str, list[str]]:
            return pb.Decision.Name(reply.decision), [pb.ReasonCode.Name(r) for r in reply.reasons]

        # 3. The guardian verifies for the infant: both codes, the guardian's live face.
        allow = verify(infant.qr_text, delegation.qr_text)
        decision, reasons = names(allow)
        steps.record("guardian_for_infant", decision, reasons, decision == "ALLOW")
        # 4. The nurse records the vaccination: signed, bound to that ALLOW, delivered, a FHIR Immunization.
        request = dict(verification_token_id=allow.token_id, vaccine_code="08", lot_number="HB2291",
                       expiry="2099-06-30", dose_number=1, series_doses=3, route="IM", body_site="LVL",
                       performer_staff_id="nurse-17")
        done = stub.RecordVaccination(pb.VaccinationRecordRequest(**request), timeout=30)
        wait_until(lambda: state.storage.immunization_for(infant.card_id) is not None, 20)
        history = json.loads(hospital.ImmunizationHistory(rpb.ImmunizationHistoryRequest(card_id=infant.card_id),
                                                          timeout=10).json)
        resource = history["entry"][0]["resource"] if history.get("entry") else {}
        steps.record("vaccination_recorded", "ALLOW", ["VACCINATION_RECORD"],
                     resource.get("resourceType") == "Immunization" and resource.get("lotNumber") == "HB2291",
                     record_id=done.record_id, fhir_vaccine=resource.get("vaccineCode", {}).get("coding", [{}])[0])
        # 5. One appointment, one vaccination: a second record is refused.
        again = verify(infant.qr_text, delegation.qr_text)
        try:
            stub.RecordVaccination(pb.VaccinationRecordRequest(**{**request, "verification_token_id":
                                                                   again.token_id}), timeout=30)
            steps.record("second_record_refused", None, [], False)
        except grpc.RpcError as exc:
            reason = dict(exc.trailing_metadata() or ()).get("edge-reason", "")
            steps.record("second_record_refused", None, [reason], reason == "appointment_used")
        # 6. A 16-year-old verifies alone.
        decision, reasons = names(verify(teen.qr_text))
        steps.record("teen_alone", decision, reasons, decision == "ALLOW")
        # 7. An expired delegation is refused (it was issued to lapse two seconds after issue).
        time.sleep(max(0.0, lapses_at + 1.5 - time.time()))
        decision, reasons = names(verify(infant.qr_text, lapsing.qr_text))
        steps.record("expired_delegation_refused", decision, reasons, reasons == ["DELEGATION_EXPIRED"])
        station.close()
    except grpc.RpcError as exc:
        fail(f"the vaccination scenario stopped: {exc.code().name}: {exc.details()}")
        return EXIT_ERROR
    finally:
        if daemon is not None:
            daemon.stop(1.0)
        site.server.stop(0.5)
    failed = [r["step"] for r in steps.results if not r["expected"]]
    if failed:
        fail(f"vaccination scenario: unexpected outcome at {', '.join(failed)}")
        return EXIT_ERROR
    return EXIT_OK
