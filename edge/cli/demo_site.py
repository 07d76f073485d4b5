"""What the scenario demos (``edge demo --scenario escort|vaccination``) share: a site's PKI, the embedded
registry over mutual TLS, gates registered with it, the recorded scene a gate's camera shows, and the step
log printed as text or JSON lines.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from edge.cli.common import emit, fail

if TYPE_CHECKING:
    import numpy as np

Reply = TypeVar("Reply")


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


def channel(port: int, pki: Path, name: str, server_name: str) -> grpc.Channel:
    """A mutual-TLS channel as the caller ``name`` (its certificate in ``pki``) to ``server_name``."""
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / f"{name}.key").read_bytes(),
                                         (pki / f"{name}.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", server_name)])


def as_the_gate_advises(call: Callable[[], Reply], *, attempts: int = 10, longest_s: float = 5.0) -> Reply:
    """Make a session call, and when the gate answers RESOURCE_EXHAUSTED (its per-caller session limit, or
    its camera in use) wait the ``retry-after-ms`` it advises and call again, as a gate controller does. An
    advice longer than ``longest_s`` (an hourly override limit) or the last attempt's refusal is raised."""
    for attempt in range(attempts):
        try:
            return call()
        except grpc.RpcError as exc:
            advice = dict(exc.trailing_metadata() or ()).get("retry-after-ms")
            wait_s = int(advice) / 1000 if advice else 0.5
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or wait_s > longest_s or attempt == attempts - 1:
                raise
            time.sleep(wait_s)
    raise AssertionError("attempts must be at least 1")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def has_templates(daemon: Any, count: int) -> Callable[[], bool]:
    return lambda: bool(daemon.templates.count() >= count)


@dataclass
class DemoSite:
    """A site's CA and certificates, and its registry serving over mutual TLS on a local port."""

    work: Path
    pki: Path
    state: Any  # registry.service.RegistryState
    server: Any  # registry.service.RegistryServer
    port: int
    _stubs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, work: Path, callers: dict[str, str | None], devices: list[str]) -> DemoSite:
        """``callers``: certificate name -> role (None for the registry's admin and for gates); ``devices``:
        the gates' device ids. The registry and the gates' listener get server certificates."""
        from edge.security.ca import init_ca, issue_cert
        from registry.service import RegistryServer, RegistryState, TLSFiles
        from registry.storage import SQLiteStorage

        pki = work / "pki"
        init_ca(pki)
        issue_cert(pki, "registry", server=True)
        issue_cert(pki, "edge-device", server=True)
        for name, role in callers.items():
            issue_cert(pki, name, role=role)
        for device_id in devices:
            issue_cert(pki, device_id)
        state = RegistryState.open(SQLiteStorage(work / "registry" / "registry.sqlite"), work / "registry" / "state",
                                   issuer_name="st-mary-hospital")
        server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
        return cls(work, pki, state, server, server.start("127.0.0.1:0"))

    def registry(self, caller: str) -> Any:
        """The registry stub for ``caller`` (one channel per caller, kept for the demo's life)."""
        from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc

        if caller not in self._stubs:
            self._stubs[caller] = rpb_grpc.RegistryStub(channel(self.port, self.pki, caller, "registry"))
        return self._stubs[caller]

    def start_gate(self, device_id: str, site: dict[str, Any], card: dict[str, Any], scene: Scene,
                   *, sync_interval_s: float, label: str) -> Any:
        """Register a gate's device key with the registry (as admin) and start its daemon, which syncs from
        the registry and delivers to it. ``site`` and ``card`` are those config sections."""
        from edge.config import config_from_dict
        from edge.proto_gen.registry.v1 import registry_pb2 as rpb
        from edge.security.keys import DeviceKey
        from edge.security.sealing import load_or_create_x25519, raw_public
        from edge.server.daemon import EdgeDaemon

        keys = self.work / device_id / "keys"
        key, enc = DeviceKey.load_or_create(keys), load_or_create_x25519(keys)
        self.registry("admin").RegisterDevice(rpb.RegisterDeviceRequest(
            device_id=device_id, signing_key=key.public_raw, encryption_key=raw_public(enc.public_key()),
            site=site["id"]), timeout=10)
        config = config_from_dict({
            "device": {"id": device_id, "data_dir": str(self.work / device_id)},
            "site": {"gate_id": device_id, "require_challenge": False, **site},
            "card": card,
            "server": {"address": "127.0.0.1:0", "grace_s": 2, "tls_dir": str(self.pki),
                       "server_cert": "edge-device"},
            "registry": {"address": f"127.0.0.1:{self.port}", "tls_dir": str(self.pki),
                         "sync_interval_s": sync_interval_s, "delivery_idle_s": 0.2},
        }, label)
        daemon = EdgeDaemon(config, source_factory=scene)
        daemon.start()
        return daemon


def open_scenario(args: argparse.Namespace, prefix: str, callers: dict[str, str | None],
                  devices: list[str]) -> tuple[Path, Steps, DemoSite] | None:
    """The shared data folder, the step log and a started site (in ``--workdir`` or a new temporary folder
    named ``prefix``...) for a scenario demo; None, after saying why, when the shared data is missing."""
    from edge.demo import data_dir

    try:
        data = data_dir()
    except FileNotFoundError as exc:
        fail(str(exc))
        return None
    work = demo_workdir(args.workdir, prefix)
    if work is None:
        return None
    steps = Steps(args.json)
    return data, steps, DemoSite.start(work, callers, devices)


def demo_workdir(asked: Path | None, prefix: str) -> Path | None:
    """``--workdir`` made ready (created if absent), or a new temporary folder named ``prefix``...; None, after
    saying why, when the asked path cannot be a folder of ours (a file, or not writable)."""
    if asked is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    if asked.exists() and not asked.is_dir():
        fail(f"--workdir {asked} is a file, not a folder")
        return None
    try:
        asked.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError for a file, PermissionError, NotADirectoryError on the way
        fail(f"--workdir {asked}: cannot be used as the demo's folder ({exc.strerror})")
        return None
    if not os.access(asked, os.W_OK | os.X_OK):
        fail(f"--workdir {asked}: not writable")
        return None
    return asked


def holder_face(data: Path) -> tuple[np.ndarray, bytes]:
    """The demo holder's enrolled face (from the holder's portrait) and the template commitment a card
    carries for it."""
    from edge.assembly import build_face_stage
    from edge.config import load_config
    from edge.demo import HOLDER_PORTRAIT
    from edge.imageio import load_image
    from edge.security.templates import template_digest

    face = build_face_stage(load_config()).embed_image(load_image(data / HOLDER_PORTRAIT)).vector
    return face, template_digest(face)
