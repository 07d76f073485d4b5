"""``edge demo``: the whole flow on the embedded defaults, through a real daemon and a real gRPC client.

1. a development issuer (ES256 key, trust list, revocation list) in a work folder;
2. the holder's template made from a portrait and stored encrypted on the device (as registry sync would);
3. a card issued for that holder, with the template's SHA-256 as the face commitment;
4. a gate scene: the card's QR on a phone, then the holder's live video, replayed as the camera;
5. the daemon on a free localhost port, a Verify call over gRPC, the decision, and the token verified
   offline with the device's public key.

The replayed video cannot answer a head-turn prompt, so the demo site runs the passive liveness profile
(``site.require_challenge = false``); a gate profile turns the challenge on (firmware_configs/sites/).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import grpc

from edge.cli.common import EXIT_ERROR, EXIT_OK, EXIT_SETUP, emit, fail
from edge.cli.token import jsonable
from edge.config import config_from_dict, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole flow end to end on the embedded defaults")
    p.add_argument("--workdir", type=Path, help="keep the demo's files here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="one JSON object with the outcome on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.cli.match import build_face_stage
    from edge.demo import HOLDER_PORTRAIT, DevIssuer, data_dir, speaker_frames, write_scene
    from edge.imageio import load_image
    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
    from edge.security.templates import template_digest
    from edge.security.tokens import verify_token
    from edge.server.daemon import MODEL_ID, EdgeDaemon

    say = (lambda *_: None) if args.json else print
    try:
        data = data_dir()
    except FileNotFoundError as exc:
        fail(str(exc))
        return EXIT_SETUP
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edge-demo-"))
    say(f"[1/5] work folder {work}")
    issuer = DevIssuer(work / "issuer")
    stage = build_face_stage(load_config())
    template = stage.embed_image(load_image(data / HOLDER_PORTRAIT)).vector
    commitment = template_digest(template)
    card_text, card_id = issuer.issue(commitment, site="demo-site")
    say(f"[2/5] card {card_id.hex()} issued by {issuer.issuer.issuer} ({len(card_text)} QR characters); "
        f"template commitment {commitment.hex()[:16]}...")
    scene = write_scene(work / "scene", card_text, speaker_frames(data))
    config = config_from_dict({
        "device": {"id": "edge-demo-1", "data_dir": str(work / "device")},
        "card": {"trust_list": str(issuer.trust_path), "revocations": str(issuer.revocations_path)},
        "site": {"id": "demo-site", "gate_id": "demo-gate", "require_challenge": False},
        "camera": {"source": f"replay:{scene}"},
        "server": {"address": "127.0.0.1:0", "grace_s": 2},
    }, "demo")
    daemon = EdgeDaemon(config)
    daemon.templates.put(card_id.hex(), template, MODEL_ID)
    began = time.monotonic()
    port = daemon.start()
    say(f"[3/5] daemon SERVING on 127.0.0.1:{port} after {time.monotonic() - began:.1f} s (models and Numba warm)")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            nonce = os.urandom(16)
            reply = stub.Verify(pb.VerifyRequest(nonce=nonce, gate_id="demo-gate", request_id="demo-1"), timeout=60)
    finally:
        daemon.stop(1.0)
    decision = pb.Decision.Name(reply.decision)
    reasons = [pb.ReasonCode.Name(r) for r in reply.reasons]
    say(f"[4/5] decision {decision} {reasons} {list(reply.messages)}: match {reply.match_score:.3f} "
        f"(threshold {reply.match_threshold:.2f}), liveness {reply.liveness_score:.2f}")
    say("      timings ms: " + ", ".join(f"{t.stage} {t.ms:.0f}" for t in reply.timings))
    claims = None
    if reply.token:
        claims = jsonable(verify_token(reply.token, daemon.key.public_key, now=time.time()))
        say(f"[5/5] token {reply.token_id} ({len(reply.token)} bytes) verifies with the device key "
            f"{daemon.key.key_id.hex()}:")
        for name, value in claims.items():
            say(f"      {name}: {value}")
    ok = decision == "ALLOW" and claims is not None and claims.get("nonce") == nonce.hex()
    if args.json:
        emit({"decision": decision, "reasons": reasons, "match_score": reply.match_score,
              "token_id": reply.token_id, "token_valid": claims is not None, "claims": claims, "workdir": str(work)})
    if not ok:
        fail(f"demo did not end in ALLOW with a verifiable token (decision {decision}, reasons {reasons})")
        return EXIT_ERROR
    return EXIT_OK
