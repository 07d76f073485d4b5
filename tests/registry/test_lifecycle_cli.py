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
        card = admin.IssueCard(rpb.IssueCardRequest(card_type="escort_permit", site="ward-7",
                                                    template_sha256=b"\x01" * 32), timeout=10)
        common = ["--address", f"127.0.0.1:{port}", "--tls-dir", str(pki)]
        revoked = edge("registry", "revoke-card", card.card_id, "--reason", "discharged", *common)
        assert revoked.returncode == 0, revoked.stderr
        assert json.loads(revoked.stdout)["already_revoked"] is False
        suspended = edge("registry", "device-state", "dev-a", "suspended", *common)
        assert suspended.returncode == 0 and json.loads(suspended.stdout)["since"] > 0
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
    finally:
        registry.stop()
