"""A real daemon on localhost:0 with a replay camera whose scene each test chooses."""

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
from edge.security.templates import template_digest
from edge.server.daemon import MODEL_ID, EdgeDaemon


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
    return config_from_dict({
        "device": {"id": "edge-test-1", "data_dir": str(folder)},
        "card": {"trust_list": str(issuer.trust_path), "revocations": str(issuer.revocations_path)},
        "site": {"id": "ward-7", "gate_id": "gate-a", "require_challenge": False, "max_failures": 1000},
        "camera": {"source": "replay:/nonexistent", "wait_s": 0.2},
        "server": {"address": "127.0.0.1:0", "grace_s": 5, **server},
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
    with grpc.insecure_channel(f"127.0.0.1:{daemon.port}") as ch:
        yield ch


@pytest.fixture
def verify_stub(channel):
    return pb_grpc.VerificationServiceStub(channel)
