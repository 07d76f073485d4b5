"""A real daemon on localhost:0, mutual TLS with real certificates, a replay camera whose scene each test
chooses; callers connect as a gate controller or an operator."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge.camera.sources import ReplaySource
from edge.config import config_from_dict
from edge.demo import HOLDER_PORTRAIT, DevIssuer, speaker_frames, write_scene
from edge.imageio import load_image
from edge.liveness.attacks import print_attack
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.ca import init_ca, issue_cert
from edge.security.templates import template_digest
from edge.server.daemon import MODEL_ID, EdgeDaemon

#: The daemon's certificate name (and the host name callers check).
SERVER_NAME = "edge-device"
PKI: dict[str, Path] = {}


def pki_dir(root: Path) -> Path:
    """A CA with the daemon's certificate and two callers: ``controller`` and ``operator`` (by role)."""
    if "dir" not in PKI:
        folder = root / "pki"
        init_ca(folder)
        issue_cert(folder, SERVER_NAME, server=True)
        issue_cert(folder, "gate-controller-1", role="controller")
        issue_cert(folder, "operator-1", role="operator")
        issue_cert(folder, "no-role-1")
        PKI["dir"] = folder
    return PKI["dir"]


CALLERS = {"controller": "gate-controller-1", "operator": "operator-1", "none": "no-role-1"}


def connect(daemon_or_port: object, role: str = "controller") -> grpc.Channel:
    """A mutual-TLS channel to the daemon as a caller with ``role`` (controller, operator, none)."""
    port = daemon_or_port if isinstance(daemon_or_port, int) else daemon_or_port.port  # type: ignore[attr-defined]
    folder = PKI["dir"]
    name = CALLERS[role]
    credentials = grpc.ssl_channel_credentials((folder / "ca.pem").read_bytes(),
                                               (folder / f"{name}.key").read_bytes(),
                                               (folder / f"{name}.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                               options=[("grpc.ssl_target_name_override", SERVER_NAME)])


@dataclass
class Camera:
    """The scene the next session sees; ``realtime`` paces frames like a 30 fps camera."""

    scene: Path | None = None
    realtime: bool = False
    opened: list[Path] = field(default_factory=list)

    def __call__(self) -> ReplaySource:
        assert self.scene is not None
        self.opened.append(self.scene)
        return ReplaySource(self.scene, fps=30.0, realtime=self.realtime)


@dataclass
class World:
    issuer: DevIssuer
    scenes: dict[str, Path]
    cards: dict[str, tuple[str, bytes]]
    holder_template: np.ndarray


def make_config(folder: Path, issuer: DevIssuer, **server: object) -> object:
    tls_dir = pki_dir(issuer.folder.parent)
    return config_from_dict({
        "device": {"id": "edge-test-1", "data_dir": str(folder)},
        "card": {"trust_list": str(issuer.trust_path), "revocations": str(issuer.revocations_path)},
        "site": {"id": "ward-7", "gate_id": "gate-a", "require_challenge": False, "max_failures": 1000},
        "camera": {"source": "replay:/nonexistent", "wait_s": 0.2},
        "server": {"address": "127.0.0.1:0", "grace_s": 5, "tls_dir": str(tls_dir), "server_cert": SERVER_NAME,
                   "caller_sessions_per_min": 600.0, **server},
    }, "test")


@pytest.fixture(scope="session")
def world(tmp_path_factory, testdata, face_stage) -> World:
    root = tmp_path_factory.mktemp("world")
    issuer = DevIssuer(root / "issuer")
    holder = face_stage.embed_image(load_image(testdata / HOLDER_PORTRAIT)).vector
    other = face_stage.embed_image(load_image(testdata / "faces/people/obama/obama.jpg")).vector
    cards = {
        "holder": issuer.issue(template_digest(holder), site="ward-7"),
        "other": issuer.issue(template_digest(other), site="ward-7"),
        "expired": issuer.issue(template_digest(holder), site="ward-7", now=time.time() - 7200, valid_for_s=3600),
        "revoked": issuer.issue(template_digest(holder), site="ward-7"),
    }
    live = speaker_frames(testdata)
    photo = [f for _, f in print_attack(load_image(testdata / HOLDER_PORTRAIT), np.random.default_rng(5), 45)]
    scenes = {name: write_scene(root / name, cards[name][0], live) for name in ("holder", "other", "expired",
                                                                                "revoked")}
    scenes["photo"] = write_scene(root / "photo", cards["holder"][0], photo)
    scenes["no_card"] = write_scene(root / "no_card", None, live[:10])
    return World(issuer, scenes, cards, holder)


def enroll(daemon: EdgeDaemon, world: World, testdata: Path, face_stage) -> None:
    other = face_stage.embed_image(load_image(testdata / "faces/people/obama/obama.jpg")).vector
    for name, (_, card_id) in world.cards.items():
        daemon.templates.put(card_id.hex(), other if name == "other" else world.holder_template, MODEL_ID)


@pytest.fixture(scope="module")
def camera() -> Camera:
    return Camera()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, world, camera, testdata, face_stage):
    d = EdgeDaemon(make_config(tmp_path_factory.mktemp("device"), world.issuer), source_factory=camera)
    enroll(d, world, testdata, face_stage)
    d.start()
    yield d
    d.stop(2.0)


@pytest.fixture(scope="module")
def channel(daemon):
    with connect(daemon) as ch:
        yield ch


@pytest.fixture
def verify_stub(channel):
    return pb_grpc.VerificationServiceStub(channel)


def write_config(tmp_path: Path, world, *, port: int | str = 0, metrics: str | None = None,
                 data: Path | None = None, device_id: str = "edge-proc", realtime: bool = False,
                 grace_s: float = 2) -> Path:
    """A device config for a real `edge serve` of ``world``: replay camera on the holder's scene (in real
    time with ``realtime``), mutual TLS with the world's PKI, the challenge off."""
    data = data or tmp_path / "device"
    config = tmp_path / f"edge-{port}.toml"
    config.write_text(f"""
[device]
id = "{device_id}"
data_dir = "{data}"
[card]
trust_list = "{world.issuer.trust_path}"
revocations = "{world.issuer.revocations_path}"
[site]
id = "ward-7"
require_challenge = false
[camera]
source = "replay:{world.scenes['holder']}"
replay_realtime = {str(realtime).lower()}
[server]
address = "127.0.0.1:{port}"
tls_dir = "{pki_dir(world.issuer.folder.parent)}"
server_cert = "{SERVER_NAME}"
grace_s = {grace_s}
{f'metrics_address = "{metrics}"' if metrics else ''}
""")
    return config
