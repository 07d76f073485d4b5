"""``edge registry serve|register-device|audit``, ``edge ca init|issue``, ``edge audit verify``."""

from __future__ import annotations

import argparse
import logging
import re
import sqlite3
import time
from pathlib import Path

import grpc

from edge.cli.common import (
    EXIT_DENIED,
    EXIT_OK,
    EXIT_SETUP,
    EXIT_USAGE,
    emit,
    fail,
    hex_bytes,
    non_negative_int,
    positive_float,
    positive_int,
)
from edge.cli.signals import StopSignals
from edge.config import DEVICE_ID_PATTERN
from edge.errors import ConfigError, EdgeError
from edge.security.tls import load_tls_files, report_expiry

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("registry", help="the reference central card registry")
    cmds = r.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    s = cmds.add_parser("serve", help="run the registry")
    s.add_argument("--db", default="sqlite:///registry/registry.sqlite",
                   help="sqlite:///PATH (default, embedded) or postgresql://user@host:port/db")
    s.add_argument("--state", type=Path, default=Path("registry-state"), help="issuer and template keys")
    s.add_argument("--address", default="127.0.0.1:50061")
    s.add_argument("--tls-dir", type=Path, help="ca.pem, registry.pem, registry.key (from `edge ca`)")
    s.add_argument("--plaintext", action="store_true", help="no TLS: local development only")
    s.add_argument("--port-file", type=Path)
    s.add_argument("--max-token-age-s", type=positive_int, default=14 * 86400)
    s.add_argument("--max-tokens-per-device-day", type=non_negative_int, default=100_000,
                   help="tokens a device may deliver per day they were signed; more are refused (device_rate) "
                        "and stay queued on the device: a compromised gate cannot fill the registry's disk. 0: "
                        "no cap (default: 100000, above what a gate can sign)")
    s.add_argument("--keep-days", type=non_negative_int, default=730,
                   help="delete verification tokens (which card passed which gate, when) and discharged "
                        "admissions after this many days, checked daily; recorded vaccinations stay; 0 keeps "
                        "them for good (default: 730)")
    s.add_argument("--metrics-address", help="HOST:PORT for Prometheus metrics (off by default; the management "
                                             "network only)")
    s.add_argument("--escort-policy", type=Path, help="TOML: [default] and [sites.SITE] escort permit rules "
                                                      "(max_escorts, allow_swap, max_days, require_adult, "
                                                      "require_condition); docs/ESCORT.md")
    s.set_defaults(func=run_serve)

    for name, help_text in (("register-device", "register a device's keys and site"),
                            ("audit", "a card's verification history"),
                            ("revoke-card", "revoke a card (reaches every gate with the next sync)"),
                            ("device-state", "suspend, reactivate or retire a device"),
                            ("rotate-key", "register a device's new keys (older tokens stay valid)"),
                            ("admit", "admit a patient (pseudonymous id) to a ward"),
                            ("transfer", "move a patient to another ward (their escort permits end)"),
                            ("discharge", "discharge a patient (their escort permits end)"),
                            ("update-stay", "a new expected end of an admitted patient's stay (permits run no "
                                            "longer than it)"),
                            ("issue-permit", "issue an escort permit for an admitted patient"),
                            ("reissue-lists", "after a restore from a backup: the trust and revocation lists "
                                              "again, with versions above what the gates hold"),
                            ("devices", "every device: site, state, last call, certificate end (one JSON line "
                                        "each)")):
        c = cmds.add_parser(name, help=help_text)
        c.add_argument("--address", required=True)
        c.add_argument("--tls-dir", type=Path, help="ca.pem and admin.pem/admin.key")
        c.add_argument("--plaintext", action="store_true")
        c.add_argument("--name", default="admin", help="client certificate base name in --tls-dir (a hospital "
                                                      "system's certificate for admit/transfer/discharge/update-stay/"
                                                      "issue-permit)")
        if name in ("admit", "transfer", "discharge", "update-stay", "issue-permit"):
            c.add_argument("patient_id")
            c.add_argument("--json", action="store_true")
            if name == "admit":
                c.add_argument("--site", required=True)
                c.add_argument("--ward", required=True)
                c.add_argument("--expected-days", type=positive_float, required=True)
            elif name == "transfer":
                c.add_argument("--ward", required=True)
            elif name == "update-stay":
                c.add_argument("--expected-days", type=positive_float, required=True,
                               help="expected remaining stay, from now")
            elif name == "issue-permit":
                c.add_argument("--template-sha256", required=True, type=hex_bytes(32),
                               help="the escort's face commitment, hex")
                c.add_argument("--age-band", choices=["child", "minor", "adult"])
                c.add_argument("--age-band-until", type=non_negative_int, default=0,
                               help="unix seconds: when the holder leaves a child or minor band (required for those)")
                c.add_argument("--condition-until", type=non_negative_int, default=0, help="unix seconds; 0 = none")
                c.add_argument("--replace", action="store_true", help="replace the oldest permit at the limit")
            c.set_defaults(func=run_escort)
        elif name in ("register-device", "rotate-key"):
            c.add_argument("device_id")
            c.add_argument("--signing-key", required=True, type=hex_bytes(32), help="raw Ed25519 public key, hex")
            c.add_argument("--encryption-key", required=True, type=hex_bytes(32), help="raw X25519 public key, hex")
            if name == "register-device":
                c.add_argument("--site", required=True)
            c.set_defaults(func=run_register if name == "register-device" else run_rotate)
        elif name == "revoke-card":
            c.add_argument("card_id")
            c.add_argument("--reason", default="revoked by staff", help="kept at the registry only")
            c.set_defaults(func=run_revoke)
        elif name == "reissue-lists":
            c.add_argument("--above", type=non_negative_int, default=0,
                           help="a version the gates hold (from their sync_rollback log line), if the registry has "
                                "not heard from them since it started")
            c.set_defaults(func=run_reissue)
        elif name == "devices":
            c.add_argument("--site", default="", help="only this site's devices")
            c.set_defaults(func=run_devices)
        elif name == "device-state":
            c.add_argument("device_id")
            c.add_argument("state", choices=["active", "suspended", "retired"])
            c.set_defaults(func=run_device_state)
        else:
            c.add_argument("card_id")
            c.add_argument("--json", action="store_true")
            c.set_defaults(func=run_audit)

    ca = sub.add_parser("ca", help="a development CA for mutual TLS")
    ca_cmds = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    init = ca_cmds.add_parser("init", help="make a development CA (ca.pem, ca.key) in DIR; never replaces one")
    init.add_argument("dir", type=Path)
    init.set_defaults(func=lambda a: _ca_init(a))
    issue = ca_cmds.add_parser("issue", help="a certificate for a device id, 'admin', or (--server) a host")
    issue.add_argument("dir", type=Path)
    issue.add_argument("name")
    issue.add_argument("--server", action="store_true")
    issue.add_argument("--role", choices=["controller", "operator", "hospital"],
                       help="role granted by this client certificate: controller or operator on the device API, "
                            "hospital for the registry's admissions and escort permits")
    issue.set_defaults(func=lambda a: _ca_issue(a))

    audit = sub.add_parser("audit", help="the device's tamper-evident audit log")
    audit_cmds = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_cmds.add_parser("verify", help="check the hash chain of the device's decisions")
    verify.add_argument("--data-dir", type=Path, required=True, help="the device's data_dir")
    verify.set_defaults(func=run_audit_verify)


#: A certificate's name is also its file name in the CA folder: a device id's form, nothing that is a path.
CERT_NAME = re.compile(DEVICE_ID_PATTERN)


def _ca_init(args: argparse.Namespace) -> int:
    from edge.security.ca import init_ca

    if (args.dir / "ca.key").exists() or (args.dir / "ca.pem").exists():
        fail(f"{args.dir} already holds a CA; refusing to replace the key every certificate of the site chains to")
        return EXIT_USAGE
    emit({"ca": str(init_ca(args.dir))})
    return EXIT_OK


def _ca_issue(args: argparse.Namespace) -> int:
    from cryptography import x509

    from edge.security.ca import issue_cert

    if not (args.dir / "ca.key").is_file() or not (args.dir / "ca.pem").is_file():
        fail(f"{args.dir} holds no CA (ca.pem, ca.key): run `edge ca init {args.dir}` first")
        return EXIT_USAGE
    if not CERT_NAME.fullmatch(args.name):
        fail(f"certificate name {args.name!r}: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
        return EXIT_USAGE
    cert, key = issue_cert(args.dir, args.name, server=args.server, role=args.role)
    expires = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    emit({"cert": str(cert), "key": str(key), "not_after": expires.isoformat(timespec="seconds")})
    return EXIT_OK


def admin_channel(address: str, tls_dir: Path | None, plaintext: bool, name: str = "admin") -> grpc.Channel:
    if tls_dir is not None:
        try:
            files = load_tls_files(tls_dir / "ca.pem", tls_dir / f"{name}.pem", tls_dir / f"{name}.key",
                                   setting="--tls-dir", role="admin")
        except ConfigError as exc:
            if exc.code != "tls_unreadable":
                raise
            raise ConfigError(f"{exc.message}: --tls-dir holds ca.pem and the caller's NAME.pem/NAME.key "
                              "(`edge ca issue`)", key="--tls-dir", code=exc.code) from exc
        return grpc.secure_channel(address, files.channel_credentials(),
                                   options=[("grpc.ssl_target_name_override", "registry")])
    if not plaintext:
        raise ValueError("give --tls-dir (admin certificate) or --plaintext")
    return grpc.insecure_channel(address)



def load_escort_policies(path: Path) -> dict:
    """``[default]`` and ``[sites.SITE]`` tables of escort rules; a bad key is a ConfigError naming it."""
    import tomllib

    from registry.escort import EscortPolicy

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read escort policy {path}: {exc}") from exc
    unknown = sorted(set(raw) - {"default", "sites"})
    if unknown:
        raise ConfigError(f"{path}: unknown tables {unknown}: [default] and [sites.SITE] hold the rules",
                          key=unknown[0])
    default, sites = raw.get("default", {}), raw.get("sites", {})
    for key, table in (("default", default), ("sites", sites)):
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {key} must be a table ([{key}]), not {table!r}", key=key)
    policies = {}
    for site, rules in sites.items():
        if not isinstance(rules, dict):
            raise ConfigError(f"{path}: sites.{site} must be a table ([sites.{site}]), not {rules!r}",
                              key=f"sites.{site}")
        try:
            policies[site] = EscortPolicy.from_dict({**default, **rules})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: sites.{site}: {exc}", key=f"sites.{site}") from exc
    if default:
        try:
            policies["*"] = EscortPolicy.from_dict(default)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: default: {exc}", key="default") from exc
    return policies


def run_serve(args: argparse.Namespace) -> int:
    from registry.service import RegistryServer, RegistryState, TLSFiles
    from registry.storage import open_storage

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    if args.tls_dir is None and not args.plaintext:
        fail("give --tls-dir (mutual TLS) or --plaintext (local development only)")
        return EXIT_USAGE
    database = args.db.split("@")[-1]  # never the password of a postgresql:// URL
    try:
        storage = open_storage(args.db)
    except ValueError as exc:
        fail(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # the driver's own errors (psycopg, sqlite3): the registry cannot start
        log.debug("database open failed", exc_info=True)
        fail(f"cannot open the registry database {database}: {str(exc).strip().splitlines()[0]}")
        return EXIT_SETUP
    try:
        state = RegistryState.open(storage, args.state)
        state.max_token_age_s = args.max_token_age_s
        state.max_tokens_per_device_day = args.max_tokens_per_device_day
        if args.escort_policy is not None:
            state.escort_policies = load_escort_policies(args.escort_policy)
        server = RegistryServer(state, tls=TLSFiles.in_dir(args.tls_dir, "registry") if args.tls_dir else None,
                                allow_plaintext=args.plaintext)
    except OSError as exc:  # a state or TLS folder that cannot be read or made
        storage.close()
        fail(f"registry cannot start: {exc.filename}: {exc.strerror}")
        return EXIT_SETUP
    except EdgeError:
        storage.close()
        raise
    with StopSignals() as signals:
        try:
            port = server.start(args.address)
            if args.metrics_address:
                state.metrics.serve(args.metrics_address)
        except (ValueError, RuntimeError) as exc:  # a plaintext bind off loopback, a port in use
            storage.close()
            fail(f"registry cannot listen on {args.address}: {exc}")
            return EXIT_SETUP
        except EdgeError:  # a TLS file that cannot be read or does not fit (edge.security.tls), a metrics port
            server.stop(0)
            raise
        report_expiry(log, server.tls_lives, time.time())
        if args.port_file:
            args.port_file.write_text(str(port))
        log.warning("registry serving", extra={"fields": {"port": port, "db": database,
                                                          "template_key": state.template_public_key.hex()}})
        # Daily, as on a gate: its own certificates' expiry, and the tokens past the retention.
        state.apply_retention(args.keep_days)
        while (received := signals.wait(timeout=86400.0)) is None:
            report_expiry(log, server.tls_lives, time.time())
            state.apply_retention(args.keep_days)
        log.warning("registry stopping", extra={"fields": {"signal": received.name}})
        server.stop()
    return EXIT_OK


def run_devices(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    reply = _admin(args, "ListDevices", rpb.ListDevicesRequest(site=args.site))
    if reply is None:
        return EXIT_DENIED
    for d in reply.devices:  # type: ignore[attr-defined]
        emit({"device_id": d.device_id, "site": d.site, "state": rpb.DeviceState.Name(d.state).lower(),
              "state_since": d.state_since or None, "registered": d.registered, "key_id": d.key_id,
              "last_seen": d.last_seen or None, "certificate_not_after": d.certificate_not_after or None})
    return EXIT_OK


def run_register(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    reply = _admin(args, "RegisterDevice", rpb.RegisterDeviceRequest(
        device_id=args.device_id, signing_key=args.signing_key, encryption_key=args.encryption_key, site=args.site))
    if reply is None:
        return EXIT_DENIED
    emit({"device_id": args.device_id, "key_id": reply.key_id})  # type: ignore[attr-defined]
    return EXIT_OK


def _admin(args: argparse.Namespace, method: str, request: object) -> object | None:
    """One admin call; a refusal is a message and None, never a traceback."""
    from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc

    with admin_channel(args.address, args.tls_dir, args.plaintext, getattr(args, "name", "admin")) as channel:
        try:
            return getattr(rpb_grpc.RegistryStub(channel), method)(request, timeout=10)
        except grpc.RpcError as exc:
            reason = dict(exc.trailing_metadata() or ()).get("edge-reason", "")
            fail(f"registry refused {method}: {exc.code().name}{f' ({reason})' if reason else ''}: {exc.details()}")
            return None


def run_escort(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    command = args.registry_command
    if command == "admit":
        reply = _admin(args, "AdmitPatient", rpb.AdmitPatientRequest(
            patient_id=args.patient_id, site=args.site, ward=args.ward, expected_days=args.expected_days))
    elif command == "transfer":
        reply = _admin(args, "TransferPatient", rpb.TransferPatientRequest(patient_id=args.patient_id, ward=args.ward))
    elif command == "discharge":
        reply = _admin(args, "DischargePatient", rpb.DischargePatientRequest(patient_id=args.patient_id))
    elif command == "update-stay":
        reply = _admin(args, "UpdateAdmission", rpb.UpdateAdmissionRequest(patient_id=args.patient_id,
                                                                           expected_days=args.expected_days))
    else:
        reply = _admin(args, "IssueEscortPermit", rpb.IssueEscortPermitRequest(
            patient_id=args.patient_id, template_sha256=args.template_sha256,
            age_band=args.age_band or "", age_band_until=args.age_band_until, condition_until=args.condition_until,
            replace=args.replace))
    if reply is None:
        return EXIT_DENIED
    from google.protobuf.json_format import MessageToDict

    emit(MessageToDict(reply, preserving_proto_field_name=True))
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    reply = _admin(args, "RevokeCard", rpb.RevokeCardRequest(card_id=args.card_id, reason=args.reason))
    if reply is None:
        return EXIT_DENIED
    emit({"card_id": args.card_id, "revocation_list_version": reply.revocation_list_version,  # type: ignore[attr-defined]
          "already_revoked": reply.already_revoked})  # type: ignore[attr-defined]
    return EXIT_OK


def run_reissue(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    reply = _admin(args, "ReissueLists", rpb.ReissueListsRequest(above=args.above))
    if reply is None:
        return EXIT_DENIED
    emit({"trust_list_version": reply.trust_list_version,  # type: ignore[attr-defined]
          "revocation_list_version": reply.revocation_list_version})  # type: ignore[attr-defined]
    return EXIT_OK


def run_device_state(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    state = {"active": rpb.ACTIVE, "suspended": rpb.SUSPENDED, "retired": rpb.RETIRED}[args.state]
    reply = _admin(args, "SetDeviceState", rpb.SetDeviceStateRequest(device_id=args.device_id, state=state))
    if reply is None:
        return EXIT_DENIED
    emit({"device_id": args.device_id, "state": args.state, "since": reply.since or None})  # type: ignore[attr-defined]
    return EXIT_OK


def run_rotate(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    reply = _admin(args, "RotateDeviceKey", rpb.RotateDeviceKeyRequest(
        device_id=args.device_id, signing_key=args.signing_key, encryption_key=args.encryption_key))
    if reply is None:
        return EXIT_DENIED
    emit({"device_id": args.device_id, "key_id": reply.key_id})  # type: ignore[attr-defined]
    return EXIT_OK


#: Entries asked for per AuditHistory page (the registry caps it at 5,000).
AUDIT_PAGE = 1000


def run_audit(args: argparse.Namespace) -> int:
    from edge.proto_gen.registry.v1 import registry_pb2 as rpb

    after = ""
    while True:  # page by page: a card's years of use outgrow one message
        reply = _admin(args, "AuditHistory", rpb.AuditHistoryRequest(card_id=args.card_id, limit=AUDIT_PAGE,
                                                                     after=after))
        if reply is None:
            return EXIT_DENIED
        for entry in reply.entries:  # type: ignore[attr-defined]
            row = {"token_id": entry.token_id, "device_id": entry.device_id, "iat": entry.iat,
                   "decision": entry.decision, "reasons": list(entry.reasons), "sequence": entry.sequence,
                   "site": entry.site, "gate": entry.gate}
            emit(row) if args.json else print(f"{entry.iat} {entry.device_id} {entry.gate} {entry.decision} "
                                              f"{','.join(entry.reasons)} {entry.token_id}")
        after = reply.next_page  # type: ignore[attr-defined]
        if not after:
            return EXIT_OK


def run_audit_verify(args: argparse.Namespace) -> int:
    from edge.security.audit import verify_chain

    path = args.data_dir / "outbox.sqlite"
    if not path.is_file():
        fail(f"{path} does not exist")
        return EXIT_USAGE
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = verify_chain(db)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:  # not a database, or damaged pages: a finding, not a crash
        emit({"valid": False, "entries": 0, "first_bad_seq": None, "error": "storage_corrupt",
              "message": f"{path} is damaged: {exc}"})
        return EXIT_DENIED
    emit(result)
    return EXIT_OK if result["valid"] else EXIT_DENIED
