"""Fixtures for the registry: a dev PKI, both storage backends (a real PostgreSQL server started here),
and helpers that run the registry and the device daemon as real processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from edge.security.ca import init_ca, issue_cert


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    init_ca(folder)
    issue_cert(folder, "registry", server=True)
    for name in ("admin", "dev-a", "dev-b", "dev-unregistered"):
        issue_cert(folder, name)
    issue_cert(folder, "edge-device", server=True)  # the device daemon's own listener
    issue_cert(folder, "gate-controller", role="controller")
    issue_cert(folder, "operator", role="operator")
    issue_cert(folder, "hospital-feed", role="hospital")  # the hospital's admission system
    return folder


def device_channel(port: int, pki: Path, caller: str = "gate-controller") -> grpc.Channel:
    """Mutual TLS to a device daemon as a gate controller (or ``caller``)."""
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / f"{caller}.key").read_bytes(),
                                         (pki / f"{caller}.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override",
                                                                        "edge-device")])


@pytest.fixture(scope="session")
def postgres_server():
    from registry.dev_postgres import server_binaries, throwaway_server

    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not installed (scripts/test.sh installs Debian's postgresql)")
    with throwaway_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    from registry.dev_postgres import create_database

    return create_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def tls_registry(tmp_path, db_url, pki):
    """An in-process registry with mutual TLS on a fresh database: (state, port), stopped after the test."""
    from registry.service import RegistryServer, RegistryState, TLSFiles
    from registry.storage import open_storage

    state = RegistryState.open(open_storage(db_url), tmp_path / "state")
    server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    port = server.start("127.0.0.1:0")
    yield state, port
    server.stop(0.5)


def admin_stub(port: int, pki: Path) -> rpb_grpc.RegistryStub:
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "admin.key").read_bytes(),
                                         (pki / "admin.pem").read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override",
                                                                        "registry")])
    return rpb_grpc.RegistryStub(channel)


class Process:
    """A child process of `python -m edge ...` with a port file, restartable on the same port."""

    def __init__(self, args: list[str], port_file: Path, log: Path) -> None:
        self.args, self.port_file, self.log = args, port_file, log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> int:
        self.port_file.unlink(missing_ok=True)
        handle = self.log.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", *self.args, "--port-file", str(self.port_file)],
                                     stdout=handle, stderr=handle)
        deadline = time.time() + timeout
        while not (self.port_file.exists() and self.port_file.read_text()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited: {self.log.read_text()[-2000:]}")
            if time.time() > deadline:
                raise TimeoutError(self.log.read_text()[-2000:])
            time.sleep(0.05)
        return int(self.port_file.read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def registry_process(tmp: Path, db_url: str, pki: Path, port: int) -> Process:
    return Process(["registry", "serve", "--db", db_url, "--state", str(tmp / "registry-state"), "--address",
                    f"127.0.0.1:{port}", "--tls-dir", str(pki)], tmp / "registry.port", tmp / "registry.log")


def register(stub: rpb_grpc.RegistryStub, device_id: str, keys_dir: Path, site: str) -> None:
    from edge.security.keys import DeviceKey
    from edge.security.sealing import load_or_create_x25519, raw_public

    key = DeviceKey.load_or_create(keys_dir)
    enc = load_or_create_x25519(keys_dir)
    stub.RegisterDevice(rpb.RegisterDeviceRequest(device_id=device_id, signing_key=key.public_raw,
                                                  encryption_key=raw_public(enc.public_key()), site=site), timeout=10)


def issue_card_with_template(stub: rpb_grpc.RegistryStub, tmp: Path, template, **card_fields) -> rpb.IssueCardResponse:
    """Issue a card committing to ``template`` (float32 little-endian) and store the template sealed to the
    registry's key in ``tmp/registry-state``, as an operator enrolling a holder does."""
    from edge.security.sealing import load_or_create_x25519, raw_public, seal
    from edge.security.templates import template_digest

    card = stub.IssueCard(rpb.IssueCardRequest(template_sha256=template_digest(template), **card_fields), timeout=10)
    registry_key = raw_public(load_or_create_x25519(tmp / "registry-state", "template_key.pem").public_key())
    stub.StoreTemplate(rpb.StoreTemplateRequest(card_id=card.card_id, model_id="sface-2021dec-fp32",
                                                sealed_template=seal(registry_key, template.tobytes(),
                                                                     card.card_id.encode())), timeout=10)
    return card


@dataclass
class DeviceSite:
    """A running registry with one registered device (not started) and one card whose template it holds."""

    registry: Process
    admin: rpb_grpc.RegistryStub
    data: Path
    card: rpb.IssueCardResponse
    config: Path

    def device(self, tmp: Path) -> Process:
        return Process(["serve", "--config", str(self.config)], tmp / "device.port", tmp / "device.log")


def device_site(tmp: Path, db_url: str, pki: Path, testdata: Path, template, *, server: str = "",
                registry: str = "", **card_fields) -> DeviceSite:
    """Start the registry, register device ``dev-a`` at site ``ward-7``, issue a card for ``template`` (its
    holder in the replayed scene) and write the device's config; ``server``/``registry`` are extra TOML
    lines for those sections (delivery pacing, rate limits)."""
    from edge.demo import speaker_frames, write_scene

    rport = free_port()
    process = registry_process(tmp, db_url, pki, rport)
    process.start()
    admin = admin_stub(rport, pki)
    data = tmp / "device"
    register(admin, "dev-a", data / "keys", "ward-7")
    card = issue_card_with_template(admin, tmp, template, site="ward-7", **card_fields)
    scene = write_scene(tmp / "scene", card.qr_text, speaker_frames(testdata))
    config = tmp / "device.toml"
    config.write_text(f"""
[device]
id = "dev-a"
data_dir = "{data}"
[site]
id = "ward-7"
require_challenge = false
[camera]
source = "replay:{scene}"
[server]
address = "127.0.0.1:0"
tls_dir = "{pki}"
server_cert = "edge-device"
{server}
[registry]
address = "127.0.0.1:{rport}"
tls_dir = "{pki}"
sync_interval_s = 1
delivery_idle_s = 0.2
{registry}
""")
    return DeviceSite(process, admin, data, card, config)
