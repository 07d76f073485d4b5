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
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from edge.cli.common import EXIT_ERROR, EXIT_OK, EXIT_SETUP, emit, fail

SITE = "st-mary"
SYNC_INTERVAL_S = 1.0
PATIENT = "pat-7f3a9c"


@dataclass
class Scene:
    """The scene the gate camera shows next (a recording per session)."""

    path: Path | None = None

    def __call__(self) -> Any:
        from edge.camera.sources import ReplaySource

        assert self.path is not None
        return ReplaySource(self.path, fps=30.0)


@dataclass
class Steps:
    json: bool
    results: list[dict[str, Any]] = field(default_factory=list)

    def record(self, step: str, decision: str | None, reasons: list[str], expected: bool, **extra: Any) -> None:
        row = {"step": step, "decision": decision, "reasons": reasons, "expected": expected, **extra}
        self.results.append(row)
        if self.json:
            emit(row)
        else:
            print(f"{'ok ' if expected else 'NOT'} {step}: {decision or '-'} {', '.join(reasons)}"
                  + "".join(f" {k}={v}" for k, v in extra.items()))


def _channel(port: int, pki: Path, name: str, server_name: str) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / f"{name}.key").read_bytes(),
                                         (pki / f"{name}.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", server_name)])


def _wait(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def _has_templates(daemon: Any, count: int) -> Callable[[], bool]:
    return lambda: bool(daemon.templates.count() >= count)


def run(args: argparse.Namespace) -> int:
    from edge.assembly import MODEL_ID, build_face_stage
    from edge.config import config_from_dict, load_config
    from edge.demo import HOLDER_PORTRAIT, data_dir, speaker_frames, write_scene
    from edge.imageio import load_image
    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb
    from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
    from edge.security.ca import init_ca, issue_cert
    from edge.security.keys import DeviceKey
    from edge.security.sealing import load_or_create_x25519, raw_public, seal
    from edge.security.templates import template_digest
    from edge.server.daemon import EdgeDaemon
    from registry.escort import EscortPolicy
    from registry.service import RegistryServer, RegistryState, TLSFiles
    from registry.storage import SQLiteStorage

    try:
        data = data_dir()
    except FileNotFoundError as exc:
        fail(str(exc))
        return EXIT_SETUP
    steps = Steps(args.json)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edge-escort-"))
    pki = work / "pki"
    init_ca(pki)
    issue_cert(pki, "registry", server=True)
    issue_cert(pki, "admin")
    issue_cert(pki, "hospital-adt", role="hospital")
    issue_cert(pki, "edge-device", server=True)
    issue_cert(pki, "gate-controller", role="controller")
    gates = {"gate-paediatrics": "paediatrics", "gate-oncology": "oncology"}
    for device_id in gates:
        issue_cert(pki, device_id)
    state = RegistryState.open(SQLiteStorage(work / "registry" / "registry.sqlite"), work / "registry" / "state",
                               issuer_name="st-mary-hospital")
    state.escort_policies = {SITE: EscortPolicy(max_escorts=1, allow_swap=False, max_days=7, require_adult=True)}
    registry = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    rport = registry.start("127.0.0.1:0")
    admin = rpb_grpc.RegistryStub(_channel(rport, pki, "admin", "registry"))
    hospital = rpb_grpc.RegistryStub(_channel(rport, pki, "hospital-adt", "registry"))
    daemons: list[EdgeDaemon] = []
    try:
        face = build_face_stage(load_config()).embed_image(load_image(data / HOLDER_PORTRAIT)).vector
        commitment = template_digest(face)
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
            keys = work / device_id / "keys"
            key, enc = DeviceKey.load_or_create(keys), load_or_create_x25519(keys)
            admin.RegisterDevice(rpb.RegisterDeviceRequest(device_id=device_id, signing_key=key.public_raw,
                                                           encryption_key=raw_public(enc.public_key()), site=SITE),
                                 timeout=10)
            config = config_from_dict({
                "device": {"id": device_id, "data_dir": str(work / device_id)},
                "site": {"id": SITE, "gate_id": device_id, "wards": [ward], "require_challenge": False},
                "card": {"accepted_types": ["escort_permit", "health_card"]},
                "server": {"address": "127.0.0.1:0", "grace_s": 2, "tls_dir": str(pki), "server_cert": "edge-device"},
                "registry": {"address": f"127.0.0.1:{rport}", "tls_dir": str(pki), "sync_interval_s": SYNC_INTERVAL_S,
                             "delivery_idle_s": 0.2},
            }, "escort demo")
            cameras[device_id] = Scene(scenes["escort"])
            daemon = EdgeDaemon(config, source_factory=cameras[device_id])
            daemons.append(daemon)
            daemon.start()
        for daemon in daemons:  # the first sync brings the trust list, revocations and both templates
            _wait(_has_templates(daemon, 2), 20)
        paed, onco = daemons

        def verify(daemon: EdgeDaemon, **request: Any) -> Any:
            with _channel(daemon.port or 0, pki, "gate-controller", "edge-device") as channel:
                return pb_grpc.VerificationServiceStub(channel).Verify(
                    pb.VerifyRequest(nonce=os.urandom(16), **request), timeout=60)

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

        _wait(revoked, 30, interval=0.2)
        delay = round(time.monotonic() - discharged_at, 2)
        decision, reasons = names(last)
        steps.record("denied_after_discharge", decision, reasons, reasons == ["CARD_REVOKED"],
                     discharge_to_refusal_s=delay, sync_interval_s=SYNC_INTERVAL_S)
        # 7. A staff member lets the refused person through: their own staff card and live face, a reason.
        cameras["gate-paediatrics"].path = scenes["face"]
        with _channel(paed.port or 0, pki, "gate-controller", "edge-device") as channel:
            override = pb_grpc.VerificationServiceStub(channel).Override(pb.OverrideRequest(
                nonce=os.urandom(16), refused_token_id=last.token_id, reason="clinical_need",
                staff_card_text=staff.qr_text), timeout=60)
        decision, reasons = names(override)
        steps.record("staff_override", decision, reasons, reasons == ["STAFF_OVERRIDE"], staff_card=staff.card_id)
        # 8. The override is in the registry's audit of the permit, after the refusal it overrides.
        _wait(lambda: paed.outbox.pending_count() == 0, 20)
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
        registry.stop(0.5)
    failed = [r["step"] for r in steps.results if not r["expected"]]
    if failed:
        fail(f"escort scenario: unexpected outcome at {', '.join(failed)}")
        return EXIT_ERROR
    return EXIT_OK
