"""Lifecycle from the command line against a real registry process: revoke a card, suspend and retire a
device, rotate its key; refusals are a message and exit code 6, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519, raw_public

from .conftest import admin_stub, free_port, register, registry_process

pytestmark = pytest.mark.slow


def edge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60)


def test_lifecycle_commands(tmp_path, db_url, pki):
    port = free_port()
    registry = registry_process(tmp_path, db_url, pki, port)
    registry.start()
    try:
        admin = admin_stub(port, pki)
        register(admin, "dev-a", tmp_path / "a", "ward-7")
        card = admin.IssueCard(rpb.IssueCardRequest(card_type="health_card", site="ward-7",
                                                    template_sha256=b"\x01" * 32), timeout=10)
        common = ["--address", f"127.0.0.1:{port}", "--tls-dir", str(pki)]
        revoked = edge("registry", "revoke-card", card.card_id, "--reason", "discharged", *common)
        assert revoked.returncode == 0, revoked.stderr
        assert json.loads(revoked.stdout)["already_revoked"] is False
        suspended = edge("registry", "device-state", "dev-a", "suspended", *common)
        assert suspended.returncode == 0 and json.loads(suspended.stdout)["since"] > 0
        listed = edge("registry", "devices", *common)
        assert listed.returncode == 0, listed.stderr
        [device] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (device["device_id"], device["site"], device["state"]) == ("dev-a", "ward-7", "suspended")
        new = DeviceKey.load_or_create(tmp_path / "a2")
        enc = raw_public(load_or_create_x25519(tmp_path / "a2").public_key()).hex()
        rotated = edge("registry", "rotate-key", "dev-a", "--signing-key", new.public_raw.hex(),
                       "--encryption-key", enc, *common)
        assert rotated.returncode == 0 and json.loads(rotated.stdout)["key_id"] == new.key_id.hex()
        assert edge("registry", "device-state", "dev-a", "retired", *common).returncode == 0
        again = edge("registry", "device-state", "dev-a", "active", *common)
        assert again.returncode == 6 and "FAILED_PRECONDITION" in again.stderr and "Traceback" not in again.stderr
        bad = edge("registry", "revoke-card", "not-a-card", *common)
        assert bad.returncode == 6 and "INVALID_ARGUMENT" in bad.stderr
        # A mistyped card id must not read as "revoked" while the lost card stays valid.
        version = json.loads(revoked.stdout)["revocation_list_version"]
        unknown = edge("registry", "revoke-card", "ab" * 16, *common)
        assert unknown.returncode == 6 and "NOT_FOUND" in unknown.stderr and unknown.stdout == ""
        again = edge("registry", "revoke-card", card.card_id, *common)
        assert json.loads(again.stdout) == {"card_id": card.card_id, "revocation_list_version": version,
                                            "already_revoked": True}
        reissued = edge("registry", "reissue-lists", "--above", "40", *common)  # after a restore from a backup
        assert reissued.returncode == 0 and json.loads(reissued.stdout)["revocation_list_version"] == 41
        assert json.loads(reissued.stdout)["trust_list_version"] == 41
        beyond = edge("registry", "reissue-lists", "--above", str(2**63 - 1), *common)  # no list lost that much
        assert beyond.returncode == 6 and "INVALID_ARGUMENT" in beyond.stderr and "Traceback" not in beyond.stderr
        # Bad input is named before anything is sent, and a refusal is a message, never a traceback.
        for args in (("issue-permit", "p1234", "--template-sha256", "zz"),
                     ("register-device", "dev-c", "--signing-key", "zz", "--encryption-key", "00" * 32,
                      "--site", "ward-7"),
                     ("rotate-key", "dev-a", "--signing-key", "00" * 31, "--encryption-key", "00" * 32)):
            refused = edge("registry", *args, *common)
            assert refused.returncode == 2 and "Traceback" not in refused.stderr and "hex" in refused.stderr, args
        for args in (("audit", "not-a-card"), ("register-device", "dev-a", "--signing-key", "00" * 32,
                                               "--encryption-key", "00" * 32, "--site", "ward-7")):
            refused = edge("registry", *args, *common)
            assert refused.returncode == 6 and "registry refused" in refused.stderr, (args, refused.stderr)
            assert "Traceback" not in refused.stderr
        # A stay that runs past its estimate is moved on, from the command line too.
        admitted = edge("registry", "admit", "pat-0700", "--site", "ward-7", "--ward", "w1", "--expected-days", "1",
                        "--json", *common)
        assert admitted.returncode == 0, admitted.stderr
        longer = edge("registry", "update-stay", "pat-0700", "--expected-days", "12", "--json", *common)
        assert longer.returncode == 0 and json.loads(longer.stdout)["ward"] == "w1", longer.stderr
        assert edge("registry", "update-stay", "pat-0700", "--expected-days", "-1", *common).returncode == 2
        nobody = edge("registry", "update-stay", "pat-0799", "--expected-days", "2", *common)
        assert nobody.returncode == 6 and "patient_not_admitted" in nobody.stderr and "Traceback" not in nobody.stderr
        no_cert = edge("registry", "revoke-card", card.card_id, *common, "--name", "nobody")
        assert no_cert.returncode == 5 and "nobody.pem" in no_cert.stderr and "Traceback" not in no_cert.stderr
    finally:
        registry.stop()


def test_registry_start_up_refusals_are_one_line(tmp_path, pki):
    """A bad database, state folder or address is one line and exit 2 or 5, never a traceback; and a second
    registry on a port that is in use is refused (SO_REUSEPORT would let two registries with different
    databases share the port and split the devices' deliveries between them)."""
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    base = ["registry", "serve", "--state", str(tmp_path / "state"), "--plaintext"]
    for extra, code in ((["--db", "foo://x", "--address", "127.0.0.1:0"], 2),
                        (["--db", "postgresql://edge:secret@127.0.0.1:1/db", "--address", "127.0.0.1:0"], 5),
                        (["--db", f"sqlite:///{tmp_path}/r.db", "--address", "0.0.0.0:0"], 5)):
        refused = edge(*base, *extra)
        assert refused.returncode == code and "Traceback" not in refused.stderr, refused.stderr
        assert "secret" not in refused.stderr
    refused = edge("registry", "serve", "--state", str(taken), "--plaintext", "--db", f"sqlite:///{tmp_path}/r.db",
                   "--address", "127.0.0.1:0")
    assert refused.returncode == 5 and str(taken) in refused.stderr and "Traceback" not in refused.stderr
    damaged = tmp_path / "tls"  # a registry.pem cut short in a copy: gRPC alone said "Failed to bind"
    damaged.mkdir()
    for name in ("ca.pem", "registry.key"):
        (damaged / name).write_bytes((pki / name).read_bytes())
    (damaged / "registry.pem").write_bytes((pki / "registry.pem").read_bytes()[:200])
    refused = edge("registry", "serve", "--state", str(tmp_path / "state"), "--db", f"sqlite:///{tmp_path}/r.db",
                   "--address", "127.0.0.1:0", "--tls-dir", str(damaged))
    assert refused.returncode == 5 and "Traceback" not in refused.stderr, refused.stderr
    assert "registry.pem: not a PEM certificate" in refused.stderr and "listen" not in refused.stderr
    port = free_port()
    first = registry_process(tmp_path / "one", f"sqlite:///{tmp_path}/one.db", pki, port)
    (tmp_path / "one").mkdir()
    first.start()
    try:
        second = edge("registry", "serve", "--state", str(tmp_path / "two"), "--db", f"sqlite:///{tmp_path}/two.db",
                      "--address", f"127.0.0.1:{port}", "--tls-dir", str(pki))
        assert second.returncode == 5 and "cannot listen" in second.stderr, second.stderr
    finally:
        first.stop()
