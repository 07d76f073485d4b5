"""The daemon: listeners, the components from edge.assembly, health, systemd, and shutdown.

Order of start-up, so that a refusal leaves nothing half-created: bind the listeners first (a port in use
or a socket path that cannot be written is refused before any key or database exists), then build the
components, then ``start``: camera owner, registry workers, warm-up, health SERVING and READY=1.

Lifetimes are explicit: ``start``, ``stop(grace)`` (health NOT_SERVING, STOPPING=1, refuse new calls, let
in-flight sessions finish within the grace period), ``close`` (camera, databases). One session owns the
camera at a time: others wait up to ``camera.wait_s`` and are then refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edge.assembly import MODEL_ID, Components, assemble
from edge.camera.base import FrameSource
from edge.camera.feed import CameraFeed, ReplayFeed
from edge.config import EdgeConfig, ServerConfig
from edge.errors import ConfigError, FaceChangedError
from edge.gate.overrides import names_a_card
from edge.glibc import release_free_memory
from edge.liveness import kernels
from edge.pipeline import Outcome, OverrideLink
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.clock import ClockGuard
from edge.security.tls import CertificateLife, load_tls_files, report_expiry
from edge.server.errors import Busy, InvalidRequest, OverrideRefused
from edge.server.interceptors import EdgeInterceptor
from edge.server.memory import drop_library_pages
from edge.server.metrics import Metrics
from edge.server.servicers import CardServicer, DeviceServicer, EnrollmentServicer, VerificationServicer
from edge.server.systemd import Notifier

log = logging.getLogger(__name__)
Result = TypeVar("Result")
SERVICE_NAMES = [d.full_name for d in pb.DESCRIPTOR.services_by_name.values()]
__all__ = ["MODEL_ID", "EdgeDaemon"]

SourceFactory = Callable[[], FrameSource]


class Listeners:
    """The gRPC server with its ports bound (not yet started). SO_REUSEPORT is off: a second daemon on
    the same port is refused instead of silently sharing it (calls would alternate between two keys)."""

    def __init__(self, server_config: ServerConfig, interceptor: EdgeInterceptor) -> None:
        self.config = server_config
        if server_config.address is None and server_config.unix_socket is None:
            raise ConfigError("set server.address, server.unix_socket, or both", key="server.address")
        if server_config.address is not None and server_config.tls_dir is None and not server_config.plaintext:
            raise ConfigError("server.tls_dir is required for the network listener (mutual TLS: ca.pem and the "
                              f"daemon's {server_config.server_cert}.pem/.key); server.plaintext is for "
                              "development only", key="server.tls_dir")
        self.tls_lives: tuple[CertificateLife, ...] = ()
        credentials = self._credentials() if server_config.address and not server_config.plaintext else None
        # Bodies are deserialised by the interceptor (edge.server.interceptors), so the limit here is on bytes.
        self.executor = futures.ThreadPoolExecutor(max_workers=server_config.max_workers,
                                                   thread_name_prefix="edge-rpc")
        self.server = grpc.server(
            self.executor, interceptors=[interceptor], maximum_concurrent_rpcs=server_config.max_workers * 4,
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 64 * 1024),
                     ("grpc.max_concurrent_streams", 16)])
        self.port: int | None = None
        try:
            if server_config.address is not None:
                if credentials is None:
                    log.warning("PLAINTEXT gRPC listener: no TLS, no caller roles; development only",
                                extra={"fields": {"address": server_config.address}})
                    self.port = self.server.add_insecure_port(server_config.address)
                else:
                    self.port = self.server.add_secure_port(server_config.address, credentials)
            if server_config.unix_socket is not None:
                self._bind_unix(server_config.unix_socket)
        except RuntimeError as exc:
            self.server.stop(None)
            raise ConfigError(f"cannot listen on {server_config.address}: the port is in use (is another edge "
                              "daemon running?) or not permitted", key="server.address", code="listen_failed") from exc

    def _credentials(self) -> grpc.ServerCredentials:
        folder = self.config.tls_dir
        assert folder is not None
        name = self.config.server_cert
        files = load_tls_files(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key",
                               setting="server.tls_dir", role="listener")
        self.tls_lives = files.lives
        return files.server_credentials()

    def _bind_unix(self, path: os.PathLike[str]) -> None:
        from pathlib import Path

        socket_path = Path(path)
        if socket_path.exists():
            if not stat.S_ISSOCK(socket_path.stat().st_mode):
                raise ConfigError(f"{socket_path} exists and is not a socket", key="server.unix_socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(socket_path))
                alive = True
            except OSError:
                alive = False  # a stale socket left by a previous run
            finally:
                probe.close()
            if alive:
                raise ConfigError(f"{socket_path} is served by another running daemon", key="server.unix_socket",
                                  code="listen_failed")
            socket_path.unlink()
        try:
            socket_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {socket_path.parent}: {exc.strerror}", key="server.unix_socket") from exc
        self.server.add_insecure_port(f"unix:{socket_path}")
        os.chmod(socket_path, 0o660)

    def stop(self, grace: float | None) -> None:
        self.server.stop(grace).wait()


class EdgeDaemon:
    def __init__(self, config: EdgeConfig, *, camera: CameraFeed | None = None,
                 source_factory: SourceFactory | None = None, clock: ClockGuard | None = None,
                 notifier: Notifier | None = None) -> None:
        """``source_factory`` opens a recording per session (tests, demos); ``camera`` overrides the feed."""
        self.config = config
        self.notifier = notifier or Notifier()
        server_config = config.server
        self.interceptor = EdgeInterceptor(
            {"Verify": server_config.verify_concurrency, "VerifySession": server_config.verify_concurrency,
             "Override": server_config.verify_concurrency},
            server_config.other_concurrency, plaintext=server_config.plaintext, local_role=server_config.local_role,
            sessions_per_min=server_config.caller_sessions_per_min)
        self.listeners = Listeners(server_config, self.interceptor)
        self.metrics = Metrics()
        self.interceptor.on_failure = self.metrics.rpc_failed
        try:
            if server_config.metrics_address:
                self.metrics.serve(server_config.metrics_address)
            if camera is None and source_factory is not None:
                camera = ReplayFeed(source_factory)
            self.parts: Components = assemble(config, camera=camera, clock=clock)
        except BaseException:
            self.metrics.close()
            self.listeners.stop(None)
            raise
        # The certificates this process loaded: a renewed file on disk takes effect at the next restart.
        transport = self.parts.transport
        self.certificates = (*self.listeners.tls_lives, *(transport.tls_lives if transport is not None else ()))
        self._next_daily = 0.0  # monotonic; see _daily
        self.metrics.watch(self.parts, self.certificates)
        self.camera_lock = threading.Lock()
        # Every session (and the warm-up) runs on this one thread; see on_session_thread.
        self._session_thread = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-session")
        self.health = health.HealthServicer()
        self._serving = False
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self.dropped_library_kb = 0  # clean library pages handed back after warm-up (edge.server.memory)
        self._record_lock = threading.Lock()  # one vaccination record at a time (record_vaccination)
        self._register_services()

    # The components, by the names servicers, tests and benchmarks use.
    templates = property(lambda self: self.parts.templates)
    model_id = property(lambda self: self.parts.pipeline.model_id)
    matcher = property(lambda self: self.parts.pipeline.matcher)
    outbox = property(lambda self: self.parts.outbox)
    key = property(lambda self: self.parts.key)
    enc_key = property(lambda self: self.parts.enc_key)
    clock = property(lambda self: self.parts.clock)
    cards = property(lambda self: self.parts.cards)
    faces = property(lambda self: self.parts.faces)
    liveness = property(lambda self: self.parts.liveness)
    pipeline = property(lambda self: self.parts.pipeline)
    syncer = property(lambda self: self.parts.syncer)
    deliverer = property(lambda self: self.parts.deliverer)
    camera = property(lambda self: self.parts.camera)

    @property
    def port(self) -> int | None:
        return self.listeners.port

    @property
    def metrics_port(self) -> int | None:
        return self.metrics.port

    def _register_services(self) -> None:
        server = self.listeners.server
        pb_grpc.add_VerificationServiceServicer_to_server(VerificationServicer(self), server)
        pb_grpc.add_CardServiceServicer_to_server(CardServicer(self.parts.cards), server)
        pb_grpc.add_EnrollmentServiceServicer_to_server(EnrollmentServicer(self), server)
        pb_grpc.add_DeviceServiceServicer_to_server(DeviceServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self._set_health(False)
        if self.config.server.reflection:
            reflection.enable_server_reflection([*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                                server)

    # -- sessions ---------------------------------------------------------------------------------
    def _acquire_camera(self, deadline: float | None) -> None:
        wait = self.config.camera.wait_s
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        if not self.camera_lock.acquire(timeout=wait):
            raise Busy("the camera is in use by another session", retry_after_ms=1000)

    def on_session_thread(self, work: Callable[[], Result]) -> Result:
        """Run ``work`` on the daemon's one session thread and return its result (or raise its exception),
        with the caller's context (the request id in the logs).

        Sessions are one at a time anyway (the camera lock); running them all on one thread keeps their
        memory in one glibc heap. On the RPC threads each session's frames, tensors and model buffers landed in
        whichever heap that thread had, and both heaps grew to a session's peak and kept fragments of it."""
        context = contextvars.copy_context()
        return self._session_thread.submit(context.run, work).result()

    def run_session(self, **kwargs: object) -> Outcome:
        deadline = kwargs.get("deadline")
        self._acquire_camera(deadline)  # type: ignore[arg-type]
        with self._inflight_lock:
            self._inflight += 1
        try:
            link = kwargs.pop("override", None)

            def session() -> Outcome:
                with self.parts.camera.session(deadline) as frames:  # type: ignore[arg-type]
                    if link is None:
                        return self.parts.pipeline.verify(frames, **kwargs)  # type: ignore[arg-type]
                    card_text = kwargs.pop("card_text", None)
                    return self.parts.pipeline.override(frames, link=link,  # type: ignore[arg-type]
                                                        staff_card_text=card_text, **kwargs)  # type: ignore[arg-type]

            outcome = self.on_session_thread(session)
            self.metrics.observe(outcome)
            log.info("session", extra={"fields": {"decision": outcome.decision, "reasons": outcome.reasons,
                                                  "ms": outcome.timings}})
            if self.config.server.trim_after_session:
                release_free_memory()
            return outcome
        finally:
            self.camera_lock.release()
            with self._inflight_lock:
                self._inflight -= 1
                self._inflight_lock.notify_all()

    def run_override(self, *, refused_token_id: str, refused_card_id: str, reason: str, **kwargs: object) -> Outcome:
        """Check what the override refers to and the gate's limits, then run the staff member's session."""
        site = self.config.site
        if reason not in site.override_reasons:
            raise InvalidRequest(f"override reason must be one of {list(site.override_reasons)}")
        entries = self.parts.entries
        if refused_token_id:
            known = self.parts.outbox.decision_of(refused_token_id)
            if known is None or known[1] != "DENY":
                raise OverrideRefused("this device made no DENY token with that id", code="override_unknown")
            refused, card_id = refused_token_id, known[0]
        elif len(refused_card_id) == 32 and all(c in "0123456789abcdef" for c in refused_card_id):
            refused, card_id = f"card:{refused_card_id}", refused_card_id
        else:
            raise InvalidRequest("give refused_token_id (a DENY) or refused_card_id (32 hex, for a RETRY)")
        if entries.overridden(refused):
            raise OverrideRefused("this card was let through by staff at this gate minutes ago" if names_a_card(refused)
                                  else "this refusal was already overridden", code="override_used")
        if entries.overrides_last_hour() >= site.overrides_per_gate_per_hour:
            raise Busy("this gate has had its overrides for the hour; call the supervisor", retry_after_ms=60_000)

        def staff_limit(staff_card_id: str) -> str | None:
            if entries.overrides_last_hour(staff_card_id) >= site.overrides_per_staff_per_hour:
                return "You have made the most overrides allowed in an hour; ask a colleague or the supervisor"
            return None

        link = OverrideLink(refused=refused, card_id=card_id, reason=reason, staff_limit=staff_limit)
        return self.run_session(override=link, **kwargs)

    def record_vaccination(self, record: dict) -> tuple[str, bytes]:
        """Check a vaccination record against the ALLOW it follows, sign it and queue it like any token."""
        from edge.gate.vaccination import MESSAGES, occurred_problem, record_problem, station_record
        from edge.security.tokens import TokenContent

        vaccines = self.config.site.vaccines
        record = station_record(record, timezone=self.config.site.timezone, vaccines=vaccines)
        problem = record_problem(record, now=time.time(), vaccines=vaccines)
        if problem is not None:
            raise InvalidRequest(MESSAGES.get(problem, problem), code=problem)
        entries = self.parts.entries
        allowed = entries.allowed(str(record["verification"]))
        if allowed is None or allowed.card_type != "vaccination_appointment" or \
                time.time() - allowed.at > self.config.site.record_window_s:
            raise OverrideRefused("no recent ALLOW of a vaccination appointment at this station with that token "
                                  "id", code="record_unbound")
        problem = occurred_problem(record, allowed.at)
        if problem is not None:
            raise InvalidRequest(MESSAGES.get(problem, problem), code=problem)
        appointment = allowed.card_id
        parts = self.parts
        site = self.config.site

        def sign(sequence: int) -> tuple[bytes, bytes]:
            return parts.signer.sign(TokenContent(
                card_id=appointment, qr_text="", card_kid=b"", nonce=bytes.fromhex(str(record["verification"])),
                decision="ALLOW", reasons=["VACCINATION_RECORD"], checks={"record": record}, site=site.id,
                gate=site.gate_id, revocation_version=parts.cards.revocations.version, sequence=sequence))

        # Check, sign and write as one step: two simultaneous calls for one appointment must not both pass
        # the check before either has written (tests/server/test_vaccination_station.py).
        with self._record_lock:
            if entries.recorded(appointment):
                raise OverrideRefused("a vaccination was already recorded for this appointment",
                                      code="appointment_used")
            token, token_id, _ = parts.outbox.issue(sign, card_id=appointment, decision="ALLOW",
                                                    reasons="VACCINATION_RECORD")
            entries.record_vaccination(appointment, token_id.hex(), allowed.until)
        self.metrics.decisions.labels("ALLOW", "VACCINATION_RECORD").inc()
        return token_id.hex(), token

    def capture_embeddings(self, frames: int, deadline: float | None) -> list[np.ndarray]:
        self._acquire_camera(deadline)
        faces = self.parts.faces

        def capture() -> list[np.ndarray]:
            vectors: list[np.ndarray] = []
            crowded = 0  # frames with more than one face: never used, and worth saying why
            with self.parts.camera.session(deadline) as stream:
                for index, (_, frame) in enumerate(stream):
                    if index >= frames * 3 or len(vectors) >= frames:
                        break
                    found = faces.detector.detect(frame)
                    crowded += len(found) > 1
                    if len(found) == 1:
                        embedding = faces.embed_face(frame, found[0])
                        if embedding.quality.ok:
                            vectors.append(embedding.vector)
            if not vectors and crowded:
                raise FaceChangedError("more than one face in view: only the card holder's face may be in the "
                                       "picture (a guardian holding a child keeps their own face out of it)")
            return vectors

        try:
            return self.on_session_thread(capture)
        finally:
            self.camera_lock.release()

    # -- health, watchdog -------------------------------------------------------------------------
    def _set_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *SERVICE_NAMES]:
            self.health.set(name, status)
        self._serving = serving

    def _workers_alive(self, timeout: float = 2.0) -> bool:
        """The RPC thread pool still runs work (not deadlocked or exhausted for good)."""
        try:
            return bool(self.listeners.executor.submit(lambda: True).result(timeout=timeout))
        except Exception:
            return False

    def _monitor_loop(self) -> None:
        """Health follows the camera; the systemd watchdog is fed only while the daemon's own machinery
        works (RPC workers run, the camera owner lives), so a wedged daemon is restarted."""
        watchdog = self.config.server.watchdog_s or self.notifier.watchdog_s
        period = min(0.5, watchdog / 2) if watchdog else 0.5
        last_status = ""
        while not self._stop.wait(period):
            camera = self.parts.camera.status()
            if camera.ok != self._serving:
                self._set_health(camera.ok)
                log.warning("health", extra={"fields": {"serving": camera.ok, "camera": camera.reason}})
            text = (f"serving; camera: {camera.reason}; outbox pending {self.parts.outbox.pending_count()}"
                    if camera.ok else f"NOT serving: camera: {camera.reason}")
            if text != last_status:
                self.notifier.status(text)
                last_status = text
            if watchdog and self._workers_alive(timeout=watchdog / 4):
                self.notifier.watchdog()
            self._daily()

    def _daily(self) -> None:
        """At start and then once a day, on a trusted clock (a Pi at boot, before NTP, reads an old date):
        log expired and soon-expiring certificates, so the warning reaches the site's log collection in time;
        and delete the gate's records that no rule needs any more (EntryLog.prune) and the faces enrolled
        here whose card has ended or was never used (TemplateStore.prune_enrolled); on a gate without a
        registry, the outbox's tokens past their retention too (the delivery loop does it elsewhere)."""
        if time.monotonic() < self._next_daily:
            return
        trusted, _ = self.parts.clock.trusted()
        if not trusted:
            return
        self._next_daily = time.monotonic() + 86400.0
        report_expiry(log, self.certificates, time.time())
        outbox = self.parts.outbox
        try:
            deleted = self.parts.entries.prune(lambda token_id: outbox.decision_of(token_id) is not None)
            deleted["templates"] = self.parts.templates.prune_enrolled(
                time.time(), self.config.device.keep_unclaimed_templates_days * 86400.0)
            if self.parts.deliverer is None:  # standalone: no delivery loop prunes the outbox
                registry = self.config.registry
                deleted["tokens"] = outbox.prune_delivered(registry.keep_delivered_days * 86400.0,
                                                           keep_rejected_s=registry.keep_rejected_days * 86400.0)
        except Exception:  # the gate serves on; the next day tries again
            log.exception("entry log retention failed")
            return
        if any(deleted.values()):
            log.info("entry log pruned", extra={"fields": deleted})

    # -- lifetime ---------------------------------------------------------------------------------
    def warm_up(self) -> float:
        """Compile or load the kernels, run every stage once, then hand back what only start-up needed (freed
        heap, library pages) and run the stages again, so the first session finds its pages resident (it
        ran 20 ms slower without the second pass)."""
        began = time.monotonic()
        kernels.warm_up()
        self.on_session_thread(self._exercise)  # where sessions will run, so their heap is the warmed one
        release_free_memory()  # model loading and JIT leave tens of MB of freed heap behind
        self.dropped_library_kb = drop_library_pages()  # the steady state faults back only what it uses
        self.on_session_thread(self._exercise)
        release_free_memory()
        return time.monotonic() - began

    def _exercise(self) -> None:
        frame = np.zeros((240, 320, 3), np.uint8)
        self.parts.pipeline.qr.decode(frame)
        self.parts.faces.warm_up()
        self.parts.liveness.decide([(0.0, [])], [frame])

    def start(self) -> int | None:
        parts = self.parts
        self.notifier.status("warming up")
        parts.camera.start()
        self.listeners.server.start()
        if parts.syncer is not None:
            parts.syncer.start()  # first round now; failures leave the persisted cache in charge
        if parts.deliverer is not None:
            parts.deliverer.start()
        seconds = self.warm_up()
        wait_ready = getattr(parts.camera, "wait_ready", None)
        if wait_ready is not None:
            wait_ready(self.config.camera.stall_s)
        camera = parts.camera.status()
        self._set_health(camera.ok)
        self._daily()
        self._monitor = threading.Thread(target=self._monitor_loop, name="edge-monitor", daemon=True)
        self._monitor.start()
        self.notifier.ready("serving" if camera.ok else f"NOT serving: camera: {camera.reason}")
        log.warning("serving" if camera.ok else "started without a camera", extra={"fields": {
            "port": self.port, "warm_up_s": round(seconds, 3), "device": self.config.device.id,
            "library_pages_dropped_mb": round(self.dropped_library_kb / 1024, 1),
            "camera": camera.reason}})
        return self.port

    def stop(self, grace: float | None = None) -> None:
        grace = self.config.server.grace_s if grace is None else grace
        self.notifier.stopping(f"stopping (grace {grace:g} s)")
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self.listeners.stop(grace)
        with self._inflight_lock:
            self._inflight_lock.wait_for(lambda: self._inflight == 0, timeout=grace)
        parts = self.parts
        for worker in (parts.syncer, parts.deliverer):
            if worker is not None:
                worker.stop()
        if parts.deliverer is not None:  # one last round so a clean stop leaves as little queued as possible
            try:
                parts.deliverer.run_once()
            except Exception:
                log.warning("final delivery round failed; tokens stay queued")
        if self._monitor is not None:
            self._monitor.join(2.0)
        self.close()

    def close(self) -> None:
        self._session_thread.shutdown(wait=False)
        self.metrics.close()
        self.parts.close()
        self.notifier.close()
