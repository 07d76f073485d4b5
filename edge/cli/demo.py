"""``edge demo``: the whole flow on the embedded defaults, through real gRPC, mutual TLS and the registry.

1. a dev CA with certificates for the registry, an admin, the device (as the registry's client and as its
   own mutual-TLS listener) and a gate controller; the reference registry embedded
   (SQLite, mutual TLS) on a free localhost port;
2. the device's keys made and registered with the registry (site "demo-site");
3. enrollment: the holder's template made from a portrait, sealed to the registry and stored there; the
   registry issues a card whose face commitment is that template's SHA-256;
4. the gate daemon starts with a replay camera (the card's QR on a phone, then the holder's live video),
   syncs the trust list, revocations and the template (sealed to this device) from the registry;
5. a Verify call over gRPC: the decision, the token verified with the device's public key, and the token
   delivered to the registry and visible in its audit query.

The replayed video cannot answer a head-turn prompt, so the demo site runs the passive liveness profile
(``site.require_challenge = false``); the shipped gate profiles turn the challenge on (firmware_configs/sites/).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from edge.cli.common import EXIT_ERROR, EXIT_OK, EXIT_SETUP, emit, fail
from edge.cli.demo_site import channel, demo_workdir, wait_until
from edge.cli.token import jsonable
from edge.config import config_from_dict, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole flow end to end on the embedded defaults")
    p.add_argument("--workdir", type=Path, help="keep the demo's files here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="one JSON object with the outcome on stdout (with "
                                                      "--scenario: one object per step)")
    p.add_argument("--scenario", choices=["escort", "vaccination"],
                   help="a place's story end to end: escort (ward gate) or vaccination (station)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scenario == "escort":
        from edge.cli import escort_demo

        return escort_demo.run(args)
    if args.scenario == "vaccination":
        from edge.cli import vaccination_demo

        return vaccination_demo.run(args)
    from edge.assembly import build_face_stage
    from edge.demo import HOLDER_PORTRAIT, data_dir, speaker_frames, write_scene
    from edge.imageio import load_image
    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb
    from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
    from edge.registry_client.transport import GrpcTransport
    from edge.security.ca import init_ca, issue_cert
    from edge.security.keys import DeviceKey
    from edge.security.sealing import load_or_create_x25519, raw_public, seal
    from edge.security.templates import template_digest
    from edge.security.tokens import verify_token
    from edge.server.daemon import MODEL_ID, EdgeDaemon
    from registry.service import RegistryServer, RegistryState, TLSFiles
    from registry.storage import SQLiteStorage

    say = (lambda *_: None) if args.json else print
    try:
        data = data_dir()
    except FileNotFoundError as exc:
        fail(str(exc))
        return EXIT_SETUP
    work = demo_workdir(args.workdir, "edge-demo-")
    if work is None:
        return EXIT_SETUP  # as the scenario demos, for whom a folder they cannot use is set-up too
    device_id, site = "edge-demo-1", "demo-site"
    pki = work / "pki"
    init_ca(pki)
    issue_cert(pki, "registry", server=True)
    for name in ("admin", device_id):
        issue_cert(pki, name)
    issue_cert(pki, "edge-device", server=True)  # the daemon's own listener (mutual TLS)
    issue_cert(pki, "demo-gate-controller", role="controller")
    state = RegistryState.open(SQLiteStorage(work / "registry" / "registry.sqlite"), work / "registry" / "state",
                               issuer_name="demo-hospital")
    registry = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    rport = registry.start("127.0.0.1:0")
    say(f"[1/6] registry (SQLite, mutual TLS) on 127.0.0.1:{rport}; work folder {work}")
    admin_channel = channel(rport, pki, "admin", "registry")
    admin = rpb_grpc.RegistryStub(admin_channel)
    keys = work / "device" / "keys"
    device_key, enc_key = DeviceKey.load_or_create(keys), load_or_create_x25519(keys)
    admin.RegisterDevice(rpb.RegisterDeviceRequest(device_id=device_id, signing_key=device_key.public_raw,
                                                   encryption_key=raw_public(enc_key.public_key()), site=site),
                         timeout=10)
    say(f"[2/6] device {device_id} registered (key id {device_key.key_id.hex()})")

    template = build_face_stage(load_config()).embed_image(load_image(data / HOLDER_PORTRAIT)).vector
    enrolling = GrpcTransport(f"127.0.0.1:{rport}", tls=(pki / "ca.pem", pki / f"{device_id}.pem",
                                                         pki / f"{device_id}.key"), server_name="registry")
    commitment = template_digest(template)  # what the enrolling device hands the issuer
    card = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site=site, template_sha256=commitment),
                           timeout=10)
    sealed = seal(state.template_public_key, template.astype("<f4").tobytes(), card.card_id.encode())
    if enrolling.store_template(card.card_id, sealed, MODEL_ID) != commitment:
        fail("the registry's digest of the stored template differs from the card's commitment")
        return EXIT_ERROR
    enrolling.close()
    say(f"[3/6] template enrolled (sealed to the registry; commitment {commitment.hex()[:16]}...); card "
        f"{card.card_id} issued ({len(card.qr_text)} QR characters)")

    scene = write_scene(work / "scene", card.qr_text, speaker_frames(data))
    config = config_from_dict({
        "device": {"id": device_id, "data_dir": str(work / "device")},
        "site": {"id": site, "gate_id": "demo-gate", "require_challenge": False},
        "camera": {"source": f"replay:{scene}"},
        "server": {"address": "127.0.0.1:0", "grace_s": 2, "tls_dir": str(pki), "server_cert": "edge-device"},
        "registry": {"address": f"127.0.0.1:{rport}", "tls_dir": str(pki), "sync_interval_s": 2,
                     "delivery_idle_s": 0.2},
    }, "demo")
    daemon = EdgeDaemon(config)
    began = time.monotonic()
    port = daemon.start()
    synced = wait_until(lambda: daemon.templates.count() > 0 and len(daemon.cards.trust.by_kid) > 0, 20,
                        interval=0.05)
    say(f"[4/6] daemon SERVING on 127.0.0.1:{port} after {time.monotonic() - began:.1f} s; synced from the "
        f"registry: trust list, revocations, {daemon.templates.count()} template(s)" + ("" if synced else " (NOT)"))
    history = []
    try:
        with channel(port or 0, pki, "demo-gate-controller", "edge-device") as gate:
            nonce = os.urandom(16)
            reply = pb_grpc.VerificationServiceStub(gate).Verify(
                pb.VerifyRequest(nonce=nonce, gate_id="demo-gate", request_id="demo-1"), timeout=60)
        decision = pb.Decision.Name(reply.decision)
        reasons = [pb.ReasonCode.Name(r) for r in reply.reasons]
        say(f"[5/6] decision {decision} {reasons} {list(reply.messages)}: match {reply.match_score:.3f} "
            f"(threshold {reply.match_threshold:.2f}), liveness {reply.liveness_score:.2f}")
        say("      timings ms: " + ", ".join(f"{t.stage} {t.ms:.0f}" for t in reply.timings))
        claims = None
        if reply.token:
            claims = jsonable(verify_token(reply.token, daemon.key.public_key, now=time.time()))
            say(f"      token {reply.token_id} ({len(reply.token)} bytes) verifies with the device key:")
            for name, value in claims.items():
                say(f"        {name}: {value}")
            wait_until(lambda: daemon.outbox.pending_count() == 0, 20, interval=0.05)
            history = list(admin.AuditHistory(rpb.AuditHistoryRequest(card_id=card.card_id), timeout=10).entries)
            say(f"[6/6] registry audit for card {card.card_id}:")
            for entry in history:
                say(f"      {entry.device_id} {entry.gate} {entry.decision} {list(entry.reasons)} "
                    f"token {entry.token_id} sequence {entry.sequence}")
    finally:
        daemon.stop(1.0)
        admin_channel.close()
        registry.stop(0.5)
    delivered = any(e.token_id == reply.token_id for e in history)
    ok = decision == "ALLOW" and claims is not None and claims.get("nonce") == nonce.hex() and delivered
    if args.json:
        emit({"decision": decision, "reasons": reasons, "match_score": reply.match_score, "token_id": reply.token_id,
              "token_valid": claims is not None, "delivered_to_registry": delivered, "claims": claims,
              "workdir": str(work)})
    if not ok:
        fail(f"demo did not end in ALLOW with a verifiable token in the registry (decision {decision}, "
             f"reasons {reasons}, delivered {delivered})")
        return EXIT_ERROR
    return EXIT_OK

