"""The README's Raspberry Pi steps for a gate with a registry, as commands, in real processes: one certificate
per board (`edge ca issue CA gate-7a --server`, its name the device id), the board's keys read with
`edge client info`, registered with `edge registry register-device`, then the gate syncs.

Both steps failed before 2026-11-24: `edge client info` did not show the keys register-device takes, and a
`--server` certificate was refused by the registry as a client, so the board logged the registry as
unreachable at every sync.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .conftest import Process, free_port, registry_process

pytestmark = pytest.mark.slow


def edge(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout.splitlines()[-1]) if done.stdout.strip() else {}


def test_a_gate_set_up_by_the_readme_registers_and_syncs(tmp_path):
    ca = tmp_path / "ca"
    edge("ca", "init", str(ca))
    for name, extra in (("registry", ["--server"]), ("admin", []), ("gate-7a", ["--server"]),
                        ("gate-7a-controller", ["--role", "controller"])):
        edge("ca", "issue", str(ca), name, *extra)
    rport = free_port()
    registry = registry_process(tmp_path, f"sqlite:///{tmp_path / 'registry.sqlite'}", ca, rport)
    registry.start()
    socket_path = tmp_path / "run" / "edge.sock"
    config = tmp_path / "site.toml"
    config.write_text(f"""
[device]
id = "gate-7a"
data_dir = "{tmp_path / 'data'}"
[site]
id = "ward-7"
gate_id = "7a"
require_challenge = false
[camera]
source = "replay:/nonexistent"
[server]
address = "127.0.0.1:0"
tls_dir = "{ca}"
server_cert = "gate-7a"
unix_socket = "{socket_path}"
[registry]
address = "127.0.0.1:{rport}"
tls_dir = "{ca}"
sync_interval_s = 1
""")
    gate = Process(["serve", "--config", str(config)], tmp_path / "gate.port", tmp_path / "gate.log")
    try:
        gate.start()
        info = edge("client", "info", "--socket", str(socket_path))
        assert info["last_sync_age_s"] == -1.0 or info["last_sync_age_s"] > 0  # not registered: no sync yet
        edge("registry", "register-device", "gate-7a", "--site", "ward-7", "--signing-key", info["signing_key"],
             "--encryption-key", info["encryption_key"], "--address", f"127.0.0.1:{rport}", "--tls-dir", str(ca))
        deadline = time.time() + 60
        while time.time() < deadline:
            info = edge("client", "info", "--socket", str(socket_path))
            if 0 <= info["last_sync_age_s"] < 5 and not info["delivery_error"]:
                break
            time.sleep(0.5)
        assert 0 <= info["last_sync_age_s"] < 5, (info, (tmp_path / "gate.log").read_text()[-3000:])
        assert info["tls_expires_certificate"] in ("listener", "registry_client")
    finally:
        gate.stop()
        registry.stop()
