"""The composition root: every component built from the one config object, in one place.

The daemon (edge.server) and the commands (edge.cli) both build what they need here, so each layer imports
only downwards: cli -> server -> assembly -> parts (camera, qr, credential, vision, liveness, security,
registry_client). Builders are small and separate so a command builds only what it uses (``edge match``
needs the face stage, not the camera, the registry client or the gRPC stack).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import CameraConfig, EdgeConfig
from edge.errors import ConfigError
from edge.vision.face_stage import FaceStage
from edge.vision.matcher import SFACE
from edge.vision.quality import QualityLimits

if TYPE_CHECKING:  # the parts below are imported where they are built: `edge match` needs none of them
    from cryptography.hazmat.primitives.asymmetric import x25519

    from edge.camera.base import FrameSource
    from edge.camera.feed import CameraFeed
    from edge.credential.verifier import CardVerifier
    from edge.gate.entries import EntryLog
    from edge.liveness.checker import LivenessChecker, LivenessThresholds
    from edge.pipeline import VerificationPipeline
    from edge.registry_client.delivery import Deliverer
    from edge.registry_client.outbox import Outbox
    from edge.registry_client.sync import Syncer
    from edge.registry_client.transport import GrpcTransport
    from edge.security.clock import ClockGuard
    from edge.security.keys import DeviceKey
    from edge.security.templates import TemplateStore
    from edge.security.tokens import TokenSigner

log = logging.getLogger(__name__)
#: The default face model's template id (a site's own is ``config.face.face_model.model_id``).
MODEL_ID = SFACE.model_id


def build_face_stage(config: EdgeConfig, *, batch: bool = False) -> FaceStage:
    """``batch``: for a one-shot command that embeds photographs (match, calibrate): each model call runs on
    one thread, and the command runs ``batch_workers(config)`` images at once (edge/vision/batch.py). Every
    stage's detector keeps onnxruntime's arena for its first pass (FaceStage.from_models, ``detector_arena``):
    the daemon's too, whose frames have one size, so the arena stops growing after the first session."""
    face = config.face
    limits = QualityLimits(min_eye_distance_px=face.min_eye_distance_px, max_yaw_deg=face.max_yaw_deg,
                           max_pitch_deg=face.max_pitch_deg, min_sharpness=face.min_sharpness,
                           min_brightness=face.min_brightness, max_brightness=face.max_brightness)
    return FaceStage.from_models(config.models.dir, threads=1 if batch else config.models.threads,
                                 max_side=face.detect_max_side, score_threshold=face.score_threshold,
                                 flip_fusion=face.flip_fusion, limits=limits,
                                 retry_max_side=face.detect_retry_max_side, memory_arena=config.models.memory_arena,
                                 detector_arena=True, embedder_arena=batch, model=face.face_model)


def batch_workers(config: EdgeConfig) -> int:
    """Images a batch command embeds at once: the cores ``models.threads`` gives the models."""
    return config.models.threads


def liveness_thresholds(config: EdgeConfig, faces: FaceStage,
                        require_challenge: bool | None = None) -> LivenessThresholds:
    """The liveness rules a gate with this config applies (``require_challenge``: the site's unless given).
    The daemon and the liveness commands both take them from here, so a command run with a site's config
    judges as that site's gates do."""
    from edge.liveness.checker import LivenessThresholds

    lv = config.liveness
    return LivenessThresholds(max_moire=lv.max_moire, max_glare=lv.max_glare, max_bezel=lv.max_bezel,
                              min_pad_live=lv.min_pad_live, min_planarity=lv.min_planarity,
                              min_nose_depth=lv.min_nose_depth, min_turn_deg=lv.min_turn_deg,
                              min_eye_travel=lv.min_eye_travel, min_eye_distance_px=lv.min_eye_distance_px,
                              quality=faces.limits, require_challenge=config.site.require_challenge
                              if require_challenge is None else require_challenge)


def build_liveness(config: EdgeConfig, faces: FaceStage) -> LivenessChecker:
    from edge.liveness.checker import LivenessChecker
    from edge.liveness.pad import PADModel

    pad = PADModel.from_dir(config.liveness.pad_models) if config.liveness.pad_models else None
    return LivenessChecker(faces.detector, liveness_thresholds(config, faces), pad)


def build_card_verifier(config: EdgeConfig) -> CardVerifier:
    """The verifier over the local trust and revocation files (the registry's synced copies replace them
    when the Syncer loads its persisted state)."""
    from edge.credential.trust import RevocationList, TrustList
    from edge.credential.verifier import CardVerifier

    card = config.card
    trust = TrustList.load(Path(card.trust_list)) if card.trust_list and Path(card.trust_list).exists() \
        else TrustList()
    revocations = RevocationList.load(Path(card.revocations)) if card.revocations else None
    return CardVerifier(trust, revocations, accepted_types=card.accepted_types, site=config.site.id,
                        clock_skew_s=card.clock_skew_s, wards=config.site.wards)


def camera_opener(camera: CameraConfig) -> Callable[[], FrameSource]:
    from edge.camera.sources import open_source

    live = camera.source.startswith("v4l2:") or camera.source == "picamera2"
    if live and camera.helper_python:
        from edge.camera.remote import HelperSource

        python = camera.helper_python
        return lambda: HelperSource(camera.source, python=python, width=camera.width, height=camera.height,
                                    fps=camera.fps, rotation=camera.rotation, hflip=camera.hflip,
                                    vflip=camera.vflip, controls=camera.controls,
                                    frame_timeout_s=camera.frame_timeout_s)
    if camera.source.startswith("v4l2:"):
        options: dict[str, object] = {"width": camera.width, "height": camera.height, "fps": camera.fps,
                                      "rotation": camera.rotation, "hflip": camera.hflip, "vflip": camera.vflip}
    elif camera.source == "picamera2":
        options = {"width": camera.width, "height": camera.height, "fps": camera.fps, "rotation": camera.rotation,
                   "hflip": camera.hflip, "vflip": camera.vflip, "controls": camera.controls,
                   "frame_timeout_s": camera.frame_timeout_s}
    else:
        options = {"realtime": camera.replay_realtime}
    return lambda: open_source(camera.source, **options)


def build_camera(camera: CameraConfig) -> CameraFeed:
    """A live camera gets one owner for the daemon's lifetime; a recording is replayed per session."""
    from edge.camera.feed import LiveFeed, ReplayFeed

    opener = camera_opener(camera)
    if camera.source.startswith("v4l2:") or camera.source == "picamera2":
        return LiveFeed(opener, buffer_frames=camera.buffer_frames, frame_timeout_s=camera.frame_timeout_s,
                        stall_s=camera.stall_s, reopen_max_s=camera.reopen_max_s)
    return ReplayFeed(opener)


def build_transport(config: EdgeConfig) -> GrpcTransport | None:
    from edge.registry_client.transport import GrpcTransport

    reg = config.registry
    if not reg.address:
        if config.card.trust_list is None:
            raise ConfigError("card.trust_list is required without a registry (the issuers whose cards this gate "
                              "accepts)", key="card.trust_list")
        return None
    if reg.tls_dir is None and not reg.plaintext:
        raise ConfigError("registry.tls_dir is required (or registry.plaintext for local development)",
                          key="registry.tls_dir")
    tls = None if reg.tls_dir is None else (reg.tls_dir / "ca.pem", reg.tls_dir / f"{config.device.id}.pem",
                                             reg.tls_dir / f"{config.device.id}.key")
    return GrpcTransport(reg.address, tls=tls, identity=config.device.id, server_name=reg.server_name)


@dataclass
class Components:
    """Everything a running daemon owns. ``close`` releases what holds files or sockets."""

    config: EdgeConfig
    key: DeviceKey
    enc_key: x25519.X25519PrivateKey
    clock: ClockGuard
    templates: TemplateStore
    outbox: Outbox
    cards: CardVerifier
    faces: FaceStage
    liveness: LivenessChecker
    signer: TokenSigner
    pipeline: VerificationPipeline
    camera: CameraFeed
    transport: GrpcTransport | None
    syncer: Syncer | None
    deliverer: Deliverer | None
    entries: EntryLog

    def close(self) -> None:
        self.camera.close()
        if self.transport is not None:
            self.transport.close()
        self.templates.close()
        self.outbox.close()
        self.entries.close()


def assemble(config: EdgeConfig, *, camera: CameraFeed | None = None, clock: ClockGuard | None = None) -> Components:
    """Build the daemon's components. Anything opened before a failure is closed again before it raises."""
    from edge.gate.entries import EntryLog
    from edge.liveness.ratelimit import FailureLimiter
    from edge.pipeline import SitePolicy, VerificationPipeline
    from edge.qr.stage import QRStage
    from edge.registry_client.delivery import Deliverer
    from edge.registry_client.outbox import Outbox
    from edge.registry_client.sync import Syncer
    from edge.security.clock import ClockGuard
    from edge.security.keys import DeviceKey
    from edge.security.sealing import load_or_create_x25519
    from edge.security.templates import TemplateStore
    from edge.security.tokens import TokenSigner
    from edge.vision.matcher import FaceMatcher

    transport = build_transport(config)  # config errors first: nothing is created on disk before them
    data = config.device.data_dir
    keys = data / "keys"
    opened: list[object] = [transport] if transport is not None else []
    try:
        key = DeviceKey.load_or_create(keys)
        enc_key = load_or_create_x25519(keys)
        clock = clock or ClockGuard(floor=config.token.clock_floor, require_sync=config.token.require_time_sync)
        templates = TemplateStore(data / "templates.sqlite", keys)
        opened.append(templates)
        outbox = Outbox(data / "outbox.sqlite", max_rows=config.registry.outbox_max_rows,
                        standalone=transport is None)
        opened.append(outbox)
        entries = EntryLog(data / "entries.sqlite", per_day=config.site.entries_per_day,
                           min_interval_s=config.site.min_entry_interval_s)
        opened.append(entries)
        cards = build_card_verifier(config)
        faces = build_face_stage(config)
        liveness = build_liveness(config, faces)
        reg = config.registry
        signer = TokenSigner(key, config.device.id, audience=config.token.audience,
                             lifetime_s=config.token.lifetime_s, clock=clock)
        deliverer = syncer = None
        if transport is not None:
            deliverer = Deliverer(outbox, transport, idle_s=reg.delivery_idle_s, batch=reg.delivery_batch,
                                  max_per_s=reg.delivery_max_per_s, max_delay_s=reg.delivery_max_backoff_s,
                                  keep_delivered_s=reg.keep_delivered_days * 86400.0,
                                  keep_rejected_s=reg.keep_rejected_days * 86400.0)
            syncer = Syncer(transport, device_id=config.device.id, verifier=cards, templates=templates,
                            enc_key=enc_key, state_dir=data, interval_s=reg.sync_interval_s)
        site = config.site
        policy = SitePolicy(site=site.id, gate_id=site.gate_id, require_challenge=site.require_challenge,
                            challenge_retries=site.challenge_retries,
                            card_timeout_s=site.card_timeout_s, liveness_frames=site.liveness_frames,
                            session_budget_s=site.session_budget_s, staleness_s=reg.staleness_s,
                            stale_policy=reg.stale_policy,
                            face_policy={str(band): str(subject) for band, subject in site.face_policy.items()})
        pipeline = VerificationPipeline(
            qr=QRStage(budget_ms=config.qr.budget_ms), cards=cards, templates=templates, faces=faces,
            liveness=liveness, signer=signer, outbox=outbox,
            matcher=FaceMatcher(faces.model, config.face.threshold, config.face.sface_match_threshold),
            policy=policy, data_age=syncer.age_s if syncer else None,
            limiter=FailureLimiter(max_failures=site.max_failures, window_s=site.failure_window_s,
                                   cooldown_s=site.cooldown_s), entries=entries)
        return Components(config=config, key=key, enc_key=enc_key, clock=clock, templates=templates, outbox=outbox,
                          cards=cards, faces=faces, liveness=liveness, signer=signer, pipeline=pipeline,
                          camera=camera or build_camera(config.camera), transport=transport, syncer=syncer,
                          deliverer=deliverer, entries=entries)
    except BaseException:
        for thing in reversed(opened):
            close = getattr(thing, "close", None)
            if close is not None:
                close()
        raise
