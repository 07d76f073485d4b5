"""The daemon: builds every component once from the config, warms them up, serves gRPC, shuts down.

Lifetimes are explicit: ``start`` (warm-up, then health SERVING), ``stop(grace)`` (health NOT_SERVING,
refuse new calls, let in-flight sessions finish within the grace period), ``close`` (databases). One
session owns the camera at a time: others wait up to ``camera.wait_s`` and are then refused with
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edge.camera.sources import FrameSource, open_source
from edge.cli.match import build_face_stage
from edge.config import EdgeConfig
from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier
from edge.errors import ConfigError
from edge.liveness import kernels
from edge.liveness.checker import LivenessChecker, LivenessThresholds
from edge.liveness.pad import PADModel
from edge.liveness.ratelimit import FailureLimiter
from edge.pipeline import Outcome, SitePolicy, VerificationPipeline
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.qr.stage import QRStage
from edge.registry_client.delivery import Deliverer
from edge.registry_client.outbox import Outbox
from edge.registry_client.sync import Syncer
from edge.registry_client.transport import GrpcTransport
from edge.security.clock import ClockGuard
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519
from edge.security.templates import TemplateStore
from edge.security.tokens import TokenSigner
from edge.server.errors import Busy
from edge.server.interceptors import EdgeInterceptor
from edge.server.metrics import Metrics
from edge.server.servicers import CardServicer, DeviceServicer, EnrollmentServicer, VerificationServicer
from edge.vision.matcher import CosineMatcher

log = logging.getLogger(__name__)
MODEL_ID = "sface-2021dec-fp32"
SERVICE_NAMES = [d.full_name for d in pb.DESCRIPTOR.services_by_name.values()]

SourceFactory = Callable[[], FrameSource]


class EdgeDaemon:
    def __init__(self, config: EdgeConfig, *, source_factory: SourceFactory | None = None,
                 clock: ClockGuard | None = None) -> None:
        self.config = config
        self.model_id = MODEL_ID
        data = config.device.data_dir
        keys = data / "keys"
        self.key = DeviceKey.load_or_create(keys)
        self.clock = clock or ClockGuard(floor=config.token.clock_floor,
                                         require_sync_flag=config.token.require_time_sync)
        self.enc_key = load_or_create_x25519(keys)
        self.templates = TemplateStore(data / "templates.sqlite", keys)
        self.outbox = Outbox(data / "outbox.sqlite", max_rows=config.registry.outbox_max_rows)
        reg = config.registry
        self.transport: GrpcTransport | None = None
        if reg.address:
            if reg.tls_dir is None and not reg.plaintext:
                raise ConfigError("registry.tls_dir is required (or registry.plaintext for local development)",
                                  key="registry.tls_dir")
            tls = None if reg.tls_dir is None else (reg.tls_dir / "ca.pem", reg.tls_dir / f"{config.device.id}.pem",
                                                     reg.tls_dir / f"{config.device.id}.key")
            self.transport = GrpcTransport(reg.address, tls=tls, identity=config.device.id,
                                           server_name=reg.server_name)
        elif config.card.trust_list is None:
            raise ConfigError("card.trust_list is required without a registry (the issuers whose cards this gate "
                              "accepts)", key="card.trust_list")
        trust_path = Path(config.card.trust_list) if config.card.trust_list else None
        self.trust = TrustList.load(trust_path) if trust_path and trust_path.exists() else TrustList()
        revocations = RevocationList.load(Path(config.card.revocations)) if config.card.revocations else None
        self.cards = CardVerifier(self.trust, revocations, accepted_types=config.card.accepted_types,
                                  site=config.site.id, clock_skew_s=config.card.clock_skew_s)
        self.faces = build_face_stage(config)
        lv = config.liveness
        pad = PADModel.from_dir(lv.pad_models) if lv.pad_models else None
        thresholds = LivenessThresholds(max_moire=lv.max_moire, max_glare=lv.max_glare, max_bezel=lv.max_bezel,
                                        min_pad_live=lv.min_pad_live, min_planarity=lv.min_planarity,
                                        min_nose_depth=lv.min_nose_depth, min_eye_distance_px=lv.min_eye_distance_px,
                                        quality=self.faces.limits, require_challenge=config.site.require_challenge)
        self.liveness = LivenessChecker(self.faces.detector, thresholds, pad)
        self.signer = TokenSigner(self.key, config.device.id, audience=config.token.audience,
                                  lifetime_s=config.token.lifetime_s, clock=self.clock)
        policy = SitePolicy(site=config.site.id, gate_id=config.site.gate_id,
                            require_challenge=config.site.require_challenge, card_timeout_s=config.site.card_timeout_s,
                            liveness_frames=config.site.liveness_frames,
                            session_budget_s=config.site.session_budget_s, staleness_s=reg.staleness_s,
                            stale_policy=reg.stale_policy)
        self.deliverer: Deliverer | None = None
        self.syncer: Syncer | None = None
        if self.transport is not None:
            self.deliverer = Deliverer(self.outbox, self.transport, idle_s=reg.delivery_idle_s,
                                       batch=reg.delivery_batch, max_per_s=reg.delivery_max_per_s,
                                       max_delay_s=reg.delivery_max_backoff_s)
            self.syncer = Syncer(self.transport, device_id=config.device.id, verifier=self.cards,
                                 templates=self.templates, enc_key=self.enc_key, state_dir=data,
                                 interval_s=reg.sync_interval_s)
        self.pipeline = VerificationPipeline(qr=QRStage(budget_ms=config.qr.budget_ms), cards=self.cards,
                                             templates=self.templates, faces=self.faces, liveness=self.liveness,
                                             matcher=CosineMatcher(config.face.match_threshold), signer=self.signer,
                                             outbox=self.outbox, policy=policy, model_id=self.model_id,
                                             data_age=self.syncer.age_s if self.syncer else None,
                                             limiter=FailureLimiter(max_failures=config.site.max_failures,
                                                                    window_s=config.site.failure_window_s,
                                                                    cooldown_s=config.site.cooldown_s))
        replay_options = {"realtime": config.camera.replay_realtime}
        self.source_factory = source_factory or (lambda: open_source(config.camera.source, **replay_options))
        self.camera_lock = threading.Lock()
        self.health = health.HealthServicer()
        self.server: grpc.Server | None = None
        self.port: int | None = None
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self.metrics = Metrics(self)
        self.metrics_port: int | None = None

    # -- sessions ---------------------------------------------------------------------------------
    def _acquire_camera(self, deadline: float | None) -> None:
        wait = self.config.camera.wait_s
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        if not self.camera_lock.acquire(timeout=wait):
            raise Busy("the camera is in use by another session", retry_after_ms=1000)

    def run_session(self, **kwargs: object) -> Outcome:
        self._acquire_camera(kwargs.get("deadline"))  # type: ignore[arg-type]
        with self._inflight_lock:
            self._inflight += 1
        try:
            source = self.source_factory()
            try:
                outcome = self.pipeline.verify(source, **kwargs)  # type: ignore[arg-type]
            finally:
                source.close()
            self.metrics.observe(outcome)
            return outcome
        finally:
            self.camera_lock.release()
            with self._inflight_lock:
                self._inflight -= 1
                self._inflight_lock.notify_all()

    def capture_embeddings(self, frames: int, deadline: float | None) -> list[np.ndarray]:
        self._acquire_camera(deadline)
        try:
            vectors: list[np.ndarray] = []
            with self.source_factory() as source:  # type: ignore[attr-defined]
                for index, (_, frame) in enumerate(source.frames()):
                    if index >= frames * 3 or len(vectors) >= frames:
                        break
                    faces = self.faces.detector.detect(frame)
                    if len(faces) == 1:
                        embedding = self.faces.embed_face(frame, faces[0])
                        if embedding.quality.ok:
                            vectors.append(embedding.vector)
            return vectors
        finally:
            self.camera_lock.release()

    # -- lifetime ---------------------------------------------------------------------------------
    def warm_up(self) -> float:
        began = time.monotonic()
        kernels.warm_up()
        self.faces.warm_up()
        frame = np.zeros((240, 320, 3), np.uint8)
        self.liveness.decide([(0.0, [])], [frame])
        return time.monotonic() - began

    def start(self) -> int:
        server_config = self.config.server
        interceptor = EdgeInterceptor({"Verify": server_config.verify_concurrency,
                                       "VerifySession": server_config.verify_concurrency},
                                      server_config.other_concurrency)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=server_config.max_workers,
                                                             thread_name_prefix="edge-rpc"),
                                  interceptors=[interceptor],
                                  options=[("grpc.max_receive_message_length", 64 * 1024)])
        pb_grpc.add_VerificationServiceServicer_to_server(VerificationServicer(self), self.server)
        pb_grpc.add_CardServiceServicer_to_server(CardServicer(self.cards), self.server)
        pb_grpc.add_EnrollmentServiceServicer_to_server(EnrollmentServicer(self), self.server)
        pb_grpc.add_DeviceServiceServicer_to_server(DeviceServicer(self), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ["", *SERVICE_NAMES]:
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if server_config.reflection:
            reflection.enable_server_reflection([*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                                self.server)
        self.port = self.server.add_insecure_port(server_config.address)
        if not self.port:
            raise ConfigError(f"cannot listen on {server_config.address}", key="server.address")
        self.server.start()
        if server_config.metrics_address:
            self.metrics_port = self.metrics.serve(server_config.metrics_address)
        if self.syncer is not None:
            self.syncer.start()  # first round now; failures leave the cache in charge
        if self.deliverer is not None:
            self.deliverer.start()
        seconds = self.warm_up()
        for name in ["", *SERVICE_NAMES]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.warning("serving", extra={"fields": {"port": self.port, "warm_up_s": round(seconds, 3),
                                                 "device": self.config.device.id}})
        return self.port

    def stop(self, grace: float | None = None) -> None:
        grace = self.config.server.grace_s if grace is None else grace
        self.health.enter_graceful_shutdown()
        if self.server is not None:
            self.server.stop(grace).wait()
        with self._inflight_lock:
            self._inflight_lock.wait_for(lambda: self._inflight == 0, timeout=grace)
        for worker in (self.syncer, self.deliverer):
            if worker is not None:
                worker.stop()
        if self.deliverer is not None:  # one last round so a clean stop leaves as little queued as possible
            try:
                self.deliverer.run_once()
            except Exception:
                log.warning("final delivery round failed; tokens stay queued")
        self.close()

    def close(self) -> None:
        self.metrics.close()
        if self.transport is not None:
            self.transport.close()
        self.templates.close()
        self.outbox.close()
