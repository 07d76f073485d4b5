"""``edge demo --scenario escort``: a ward escort permit's life, through the real embedded registry and real
daemons (two gates: the patient's ward and another ward), every call over mutual TLS.

Steps: admit a patient; issue an escort permit; a second permit for the same patient is refused at issuance;
the escort is ALLOWed at the ward's gate; the permit is DENYed at another ward's gate; the patient is
discharged and, after a sync, the permit is DENYed with CARD_REVOKED (the delay is measured); a staff member
overrides that refusal with their own card and live face; the override is in the registry's audit.

The shared data has one live video, so the same recorded person plays the escort and the staff member; the
staff member's card and enrolled face are their own records all the same.
"""

from __future__ import annotations

import argparse
import os
import random
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

SITE = "st-mary"
SYNC_INTERVAL_S = 1.0
PATIENT = "pat-7f3a9c"


def run(args: argparse.Namespace) -> int:
    from edge.assembly import MODEL_ID
    from edge.demo import speaker_frames, write_scene
    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb
    from edge.security.sealing import seal
    from edge.server.daemon import EdgeDaemon
    from registry.escort import EscortPolicy

    gates = {"gate-paediatrics": "paediatrics", "gate-oncology": "oncology"}
    opened = open_scenario(args, "edge-escort-",
                           {"admin": None, "hospital-adt": "hospital", "gate-controller": "controller"}, list(gates))
    if opened is None:
        return EXIT_SETUP
    data, steps, site = opened
    work, pki, state = site.work, site.pki, site.state
    state.escort_policies = {SITE: EscortPolicy(max_escorts=1, allow_swap=False, max_days=7, require_adult=True)}
    admin, hospital = site.registry("admin"), site.registry("hospital-adt")
    daemons: list[EdgeDaemon] = []
    try:
        face, commitment = holder_face(data)
        live = speaker_frames(data)
        scenes = {}

        # 1. The hospital's system admits a patient (a pseudonym, never a name).
        hospital.AdmitPatient(rpb.AdmitPatientRequest(patient_id=PATIENT, site=SITE, ward="paediatrics",
                                                      expected_days=3), timeout=10)
        steps.record("admit", None, [], True, patient=PATIENT, ward="paediatrics")
        # 2. One escort permit for the stay; the escort's face was enrolled (the commitment goes on the card).
        permit = hospital.IssueEscortPermit(rpb.IssueEscortPermitRequest(
            patient_id=PATIENT, template_sha256=commitment, model_id=MODEL_ID, age_band="adult"), timeout=10)
        steps.record("issue_permit", None, [], bool(permit.card_id), card_id=permit.card_id)
        # 3. One patient, one escort: a second permit is refused at issuance.
        try:
            hospital.IssueEscortPermit(rpb.IssueEscortPermitRequest(
                patient_id=PATIENT, template_sha256=commitment, model_id=MODEL_ID, age_band="adult"), timeout=10)
            steps.record("second_permit_refused", None, [], False)
        except grpc.RpcError as exc:
            reason = dict(exc.trailing_metadata() or ()).get("edge-reason", "")
            steps.record("second_permit_refused", None, [reason], reason == "escort_limit")
        staff = admin.IssueCard(rpb.IssueCardRequest(card_type="staff_card", site=SITE, template_sha256=commitment,
                                                     model_id=MODEL_ID, valid_for_s=86400), timeout=10)
        # The enrolling station stores both templates, sealed to the registry (only the committed ones fit).
        for card_id in (permit.card_id, staff.card_id):
            sealed = seal(state.template_public_key, face.astype("<f4").tobytes(), card_id.encode())
            admin.StoreTemplate(rpb.StoreTemplateRequest(card_id=card_id, sealed_template=sealed, model_id=MODEL_ID),
                                timeout=10)
        scenes["escort"] = write_scene(work / "scene-escort", permit.qr_text, live)
        scenes["face"] = write_scene(work / "scene-face", None, live)

        # Two gates of the site, each a daemon with its own device key, registered with the registry.
        cameras = {}
        for device_id, ward in gates.items():
            cameras[device_id] = Scene(scenes["escort"])
            daemons.append(site.start_gate(device_id, {"id": SITE, "wards": [ward]},
                                           {"accepted_types": ["escort_permit", "health_card"]}, cameras[device_id],
                                           sync_interval_s=SYNC_INTERVAL_S, label="escort demo"))
        for daemon in daemons:  # the first sync brings the trust list, revocations and both templates
            wait_until(has_templates(daemon, 2), 20)
        paed, onco = daemons

        def verify(daemon: EdgeDaemon, **request: Any) -> Any:
            with channel(daemon.port or 0, pki, "gate-controller", "edge-device") as gate:
                stub = pb_grpc.VerificationServiceStub(gate)
                return as_the_gate_advises(lambda: stub.Verify(pb.VerifyRequest(nonce=os.urandom(16), **request),
                                                               timeout=60))

        def names(reply: Any) -> tuple[str, list[str]]:
            return pb.Decision.Name(reply.decision), [pb.ReasonCode.Name(r) for r in reply.reasons]

        # 4. The escort at the patient's ward gate: card QR, then face and liveness.
        decision, reasons = names(verify(paed))
        steps.record("allowed_at_ward_gate", decision, reasons, decision == "ALLOW", gate="gate-paediatrics")
        # 5. The same permit at another ward's gate.
        decision, reasons = names(verify(onco))
        steps.record("denied_at_other_ward", decision, reasons, reasons == ["CARD_WRONG_WARD"], gate="gate-oncology")
        # 6. Discharge: the permit ends through the revocation list, at every gate with its next sync. A discharge
        #    comes at any moment of a gate's sync cycle: wait a random part of it, so the delay is a fair sample.
        time.sleep(random.uniform(0.0, SYNC_INTERVAL_S))
        discharged_at = time.monotonic()
        hospital.DischargePatient(rpb.DischargePatientRequest(patient_id=PATIENT), timeout=10)
        steps.record("discharge", None, [], True)
        last: Any = None

        def revoked() -> bool:
            nonlocal last
            last = verify(paed, card_text=permit.qr_text)
            return names(last)[1] == ["CARD_REVOKED"]

        wait_until(revoked, 30, interval=0.2)
        delay = round(time.monotonic() - discharged_at, 2)
        decision, reasons = names(last)
        steps.record("denied_after_discharge", decision, reasons, reasons == ["CARD_REVOKED"],
                     discharge_to_refusal_s=delay, sync_interval_s=SYNC_INTERVAL_S)
        # 7. A staff member lets the refused person through: their own staff card and live face, a reason.
        cameras["gate-paediatrics"].path = scenes["face"]
        with channel(paed.port or 0, pki, "gate-controller", "edge-device") as gate:
            stub = pb_grpc.VerificationServiceStub(gate)
            override = as_the_gate_advises(lambda: stub.Override(pb.OverrideRequest(
                nonce=os.urandom(16), refused_token_id=last.token_id, reason="clinical_need",
                staff_card_text=staff.qr_text), timeout=60))
        decision, reasons = names(override)
        steps.record("staff_override", decision, reasons, reasons == ["STAFF_OVERRIDE"], staff_card=staff.card_id)
        # 8. The override is in the registry's audit of the permit, after the refusal it overrides.
        wait_until(lambda: paed.outbox.pending_count() == 0, 20)
        history = admin.AuditHistory(rpb.AuditHistoryRequest(card_id=permit.card_id), timeout=10).entries
        trail = [(entry.decision, list(entry.reasons)) for entry in history]
        steps.record("override_in_audit", None, [r for _, rs in trail for r in rs],
                     ("ALLOW", ["STAFF_OVERRIDE"]) in trail and ("DENY", ["CARD_REVOKED"]) in trail,
                     audit_entries=len(trail))
    except grpc.RpcError as exc:
        fail(f"the escort scenario stopped: {exc.code().name}: {exc.details()}")
        return EXIT_ERROR
    finally:
        for daemon in daemons:
            daemon.stop(1.0)
        site.server.stop(0.5)
    failed = [r["step"] for r in steps.results if not r["expected"]]
    if failed:
        fail(f"escort scenario: unexpected outcome at {', '.join(failed)}")
        return EXIT_ERROR
    return EXIT_OK
