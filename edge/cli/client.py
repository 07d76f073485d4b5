"""``edge client health|verify|info``: talk to a running daemon as a gate controller or an operator would.

For installing and checking a gate: ``--socket /run/edge/edge.sock`` on the board itself (the unix socket's
role), or ``--address HOST:PORT --tls-dir DIR --name NAME`` with a caller certificate ``NAME.pem``/``.key``
and the site's ``ca.pem`` in DIR (mutual TLS; ``--server-name`` is the name in the daemon's certificate).
Output is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc

from edge.cli.common import EXIT_DENIED, EXIT_ERROR, EXIT_OK, EXIT_USAGE, emit, fail, positive_float
from edge.security.tls import load_tls_files


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("client", help="call a running daemon (health, a verification, device info)")
    actions = p.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    for name, help_text in (("health", "is the daemon SERVING?"), ("verify", "run one verification session"),
                            ("info", "device id, key id, clock, outbox")):
        c = actions.add_parser(name, help=help_text)
        c.add_argument("--socket", type=Path, help="the daemon's unix socket (on the board)")
        c.add_argument("--address", help="host:port of the daemon's mutual-TLS listener")
        c.add_argument("--tls-dir", type=Path, help="folder with ca.pem and NAME.pem/NAME.key")
        c.add_argument("--name", help="caller certificate base name in --tls-dir")
        c.add_argument("--server-name", default="edge-device", help="name in the daemon's certificate")
        if name == "verify":
            c.add_argument("--card-text", help="card text (skips reading the QR code from the camera)")
            c.add_argument("--timeout", type=positive_float, default=30.0)
        c.set_defaults(func=run)


def channel_for(args: argparse.Namespace) -> grpc.Channel:
    if args.socket is not None:
        return grpc.insecure_channel(f"unix:{args.socket}")
    if not (args.address and args.tls_dir and args.name):
        raise ValueError("give --socket, or --address with --tls-dir and --name")
    folder = args.tls_dir
    files = load_tls_files(folder / "ca.pem", folder / f"{args.name}.pem", folder / f"{args.name}.key",
                           setting="--tls-dir", role="client")
    return grpc.secure_channel(args.address, files.channel_credentials(),
                               options=[("grpc.ssl_target_name_override", args.server_name)])


def run(args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc

    try:
        channel = channel_for(args)
    except (ValueError, OSError) as exc:
        fail(str(exc))
        return EXIT_USAGE
    with channel:
        try:
            if args.client_command == "health":
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                serving = status.status == health_pb2.HealthCheckResponse.SERVING
                emit({"serving": serving})
                return EXIT_OK if serving else EXIT_DENIED
            if args.client_command == "info":
                info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
                # The two public keys are what `edge registry register-device` takes (README, Raspberry Pi).
                emit({"device_id": info.device_id, "key_id": info.key_id, "site": info.site, "gate": info.gate_id,
                      "version": info.version, "clock_trusted": info.clock_trusted, "templates": info.templates,
                      "outbox_pending": info.outbox_pending, "outbox_rejected": info.outbox_rejected,
                      "signing_key": info.public_key.hex(), "encryption_key": info.encryption_key.hex(),
                      "last_sync_age_s": info.last_sync_age_s, "delivery_error": info.delivery_error,
                      "tls_expires_at": info.tls_expires_at, "tls_expires_certificate": info.tls_expires_certificate})
                return EXIT_OK
            reply = pb_grpc.VerificationServiceStub(channel).Verify(
                pb.VerifyRequest(nonce=os.urandom(16), card_text=args.card_text or ""), timeout=args.timeout)
        except grpc.RpcError as exc:
            fail(f"{exc.code().name}: {exc.details()}")
            return EXIT_ERROR
    decision = pb.Decision.Name(reply.decision)
    emit({"decision": decision, "reasons": [pb.ReasonCode.Name(r) for r in reply.reasons],
          "messages": list(reply.messages), "prompts": list(reply.prompts), "token_id": reply.token_id,
          "card_id": reply.card_id, "timings_ms": {t.stage: t.ms for t in reply.timings}})
    return EXIT_OK if decision == "ALLOW" else EXIT_DENIED
