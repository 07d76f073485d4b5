"""`edge serve` as systemd runs it: sd_notify readiness and watchdog, refusals at start-up, one daemon per port.

Each test starts the real command in its own process, with ``NOTIFY_SOCKET`` pointing at a datagram socket
the test owns, as systemd does for ``Type=notify``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import connect, pki_dir, write_config

pytestmark = pytest.mark.slow




class NotifySocket:
    """The systemd side of sd_notify: a datagram socket that collects what the service sends."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def collect(self, until, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))

    def has(self, key: str) -> bool:
        return any(key in m.split("\n") for _, m in self.messages)

    def times(self, key: str) -> list[float]:
        return [t for t, m in self.messages if key in m.split("\n")]


def serve(config: Path, env: dict[str, str] | None = None, port_file: Path | None = None) -> subprocess.Popen:
    """The daemon, its log in a file beside the config (a pipe nobody reads would block it once full)."""
    args = [sys.executable, "-m", "edge", "serve", "--config", str(config)]
    if port_file is not None:
        args += ["--port-file", str(port_file)]
    log = open(config.with_suffix(".log"), "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, stderr=log, text=True, env={**os.environ, **(env or {})})
    log.close()
    return proc


def log_of(config: Path) -> str:
    return config.with_suffix(".log").read_text()


def test_ready_after_serving_then_watchdog_pings_and_stopping(tmp_path, world):
    notify = NotifySocket(tmp_path)
    port_file = tmp_path / "port"
    config = write_config(tmp_path, world)
    proc = serve(config, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}, port_file)
    try:
        notify.collect(lambda: notify.has("READY=1") or proc.poll() is not None, 90)
        assert notify.has("READY=1"), log_of(config)
        ready_at = notify.times("READY=1")[0]
        deadline = time.monotonic() + 5
        while not (port_file.exists() and port_file.read_text()):  # written just after READY
            assert time.monotonic() < deadline
            time.sleep(0.02)
        serving = next(json.loads(line) for line in log_of(config).splitlines() if '"serving"' in line)
        assert serving["library_pages_dropped_mb"] > 30  # LLVM and more handed back (edge/server/memory.py)
        with connect(int(port_file.read_text())) as channel:  # READY means SERVING, not "soon"
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        notify.collect(lambda: False, 3.5)
        pings = [t for t in notify.times("WATCHDOG=1") if t > ready_at]
        assert len(pings) >= 3
        gaps = [b - a for a, b in zip([ready_at, *pings], pings, strict=False)]
        assert max(gaps) <= 1.0 + 0.3  # at least every WatchdogSec/2 (scheduling slack on a loaded machine)
        assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for _, m in notify.messages)
        proc.send_signal(signal.SIGTERM)
        notify.collect(lambda: notify.has("STOPPING=1"), 10)
        assert notify.has("STOPPING=1")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.sock.close()


def test_a_second_daemon_on_the_same_port_is_refused_cleanly(tmp_path, world):
    port_file = tmp_path / "port"
    first = serve(write_config(tmp_path, world), port_file=port_file)
    try:
        deadline = time.time() + 90
        while not (port_file.exists() and port_file.read_text()):
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.1)
        port = int(port_file.read_text())
        second_data = tmp_path / "second"
        second = subprocess.run([sys.executable, "-m", "edge", "serve", "--config",
                                 str(write_config(tmp_path, world, port=port, data=second_data))],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 5
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr and "Traceback" not in second.stderr
        assert not second_data.exists()  # nothing half-created: no key, no database
        with connect(port) as channel:  # and the first daemon still answers, alone
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        first.kill()
        first.wait()


def test_metrics_port_in_use_is_refused_cleanly(tmp_path, world):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        data = tmp_path / "device"
        result = subprocess.run([sys.executable, "-m", "edge", "serve", "--config",
                                 str(write_config(tmp_path, world, metrics=f"127.0.0.1:{port}", data=data))],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 5 and "cannot serve metrics" in result.stderr
        assert "Traceback" not in result.stderr and not data.exists()
    finally:
        holder.close()


def test_an_unwritable_data_dir_and_a_damaged_outbox_are_refused_cleanly(tmp_path, world):
    if os.geteuid() == 0:  # root writes anywhere: make the folder a file instead
        blocked = tmp_path / "blocked"
        blocked.write_text("not a folder")
        data = blocked / "device"
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
        data = blocked / "device"
    result = subprocess.run([sys.executable, "-m", "edge", "serve", "--config",
                             str(write_config(tmp_path, world, data=data))], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 5 and "Traceback" not in result.stderr and str(blocked) in result.stderr

    data = tmp_path / "damaged"
    data.mkdir()
    (data / "outbox.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    result = subprocess.run([sys.executable, "-m", "edge", "serve", "--config",
                             str(write_config(tmp_path, world, data=data))], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 5 and "Traceback" not in result.stderr
    assert ("outbox.sqlite" in result.stderr and "damaged" in result.stderr) or "not a readable" in result.stderr
    audit = subprocess.run([sys.executable, "-m", "edge", "audit", "verify", "--data-dir", str(data)],
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 6 and '"storage_corrupt"' in audit.stdout and "Traceback" not in audit.stderr


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_twenty_thousand_malformed_requests_leave_memory_where_it_was(tmp_path, world):
    port_file = tmp_path / "port"
    proc = serve(write_config(tmp_path, world), port_file=port_file)
    try:
        deadline = time.time() + 90
        while not (port_file.exists() and port_file.read_text()):
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.1)
        codes: dict[str, int] = {}
        with connect(int(port_file.read_text())) as channel:
            call = channel.unary_unary("/edge.v1.CardService/DecodeCard", request_serializer=None,
                                       response_deserializer=None)

            def burst(n: int) -> None:
                pending = [call.future(b"\xff\xff\xff\xff" + os.urandom(8), timeout=30) for _ in range(n)]
                for future in pending:
                    try:
                        future.result()
                    except grpc.RpcError as exc:
                        codes[exc.code().name] = codes.get(exc.code().name, 0) + 1

            # 8 at a time: within the per-method concurrency (8) and the streams a connection may open (16),
            # so every request reaches the parser rather than being shed earlier.
            for _ in range(125):
                burst(8)  # warm-up: thread pool, TLS session, allocator arenas
            start = _rss_mb(proc.pid)
            for _ in range(2500):
                burst(8)
            end = _rss_mb(proc.pid)
        assert codes == {"INVALID_ARGUMENT": 21_000}
        assert end <= start * 1.10, (start, end)
    finally:
        proc.kill()
        proc.wait()


def test_the_client_command_reaches_the_daemon_over_its_unix_socket_and_mutual_tls(tmp_path, world):
    from edge.assembly import MODEL_ID
    from edge.security.templates import TemplateStore

    store = TemplateStore(tmp_path / "device" / "templates.sqlite", tmp_path / "device" / "keys")
    store.put(world.cards["holder"][1].hex(), world.holder_template, MODEL_ID)  # enrolled before the gate opens
    store.close()
    config = write_config(tmp_path, world)
    socket_path = tmp_path / "run" / "edge.sock"
    config.write_text(config.read_text() + f'unix_socket = "{socket_path}"\n')
    port_file = tmp_path / "port"
    proc = serve(config, port_file=port_file)
    try:
        deadline = time.time() + 90
        while not (port_file.exists() and port_file.read_text()):
            assert proc.poll() is None and time.time() < deadline, log_of(config)
            time.sleep(0.1)

        def client(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "edge", "client", *args], capture_output=True, text=True,
                                  timeout=60)

        health = client("health", "--socket", str(socket_path))
        assert health.returncode == 0 and '"serving": true' in health.stdout
        tls = ["--address", f"127.0.0.1:{port_file.read_text()}", "--tls-dir",
               str(pki_dir(world.issuer.folder.parent)), "--name", "gate-controller-1"]
        verified = client("verify", *tls)  # the camera replays the holder with the card
        assert verified.returncode == 0 and '"decision": "ALLOW"' in verified.stdout, verified.stderr
        info = client("info", "--socket", str(socket_path))
        assert info.returncode == 0 and '"device_id": "edge-proc"' in info.stdout
        shown = json.loads(info.stdout)  # what `edge registry register-device` needs (README, Raspberry Pi)
        assert len(bytes.fromhex(shown["signing_key"])) == 32 and len(bytes.fromhex(shown["encryption_key"])) == 32
        assert hashlib.sha256(bytes.fromhex(shown["signing_key"])).hexdigest()[:16] == shown["key_id"]
        anonymous = client("health", "--address", f"127.0.0.1:{port_file.read_text()}")
        assert anonymous.returncode == 2  # no certificate given: a usage error, not a traceback
    finally:
        proc.kill()
        proc.wait()
