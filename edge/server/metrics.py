"""Prometheus metrics (prometheus_client: the standard exposition format, maintained, pure Python).

Served on ``server.metrics_address`` (off by default; bind it to the management network only). The
listener is bound before anything else at start-up, so a port in use is refused early. Conventions:
counters end in ``_total`` (the client adds it), durations are histograms in seconds, timestamps are
gauges of unix seconds (``..._timestamp_seconds``, absent until the event happened), no sentinel values.
Gauges read the outbox and the sync state when scraped, so they are never stale. No card id, token id or
score of a person appears in a label.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge import __version__
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.assembly import Components
    from edge.pipeline import Outcome
    from edge.security.tls import CertificateLife

STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StateCollector(Collector):
    """Values read at scrape time from the components (outbox, templates, clock, sync, delivery, camera)."""

    def __init__(self, parts: Components, certificates: tuple[CertificateLife, ...] = ()) -> None:
        self.parts = parts
        self.certificates = certificates

    def collect(self):
        p = self.parts
        yield GaugeMetricFamily("edge_outbox_pending", "Tokens waiting for delivery to the registry",
                                value=p.outbox.pending_count())
        yield GaugeMetricFamily("edge_outbox_rejected", "Tokens the registry refused for good",
                                value=p.outbox.rejected_count())
        yield GaugeMetricFamily("edge_templates", "Templates stored on the device", value=p.templates.count())
        yield GaugeMetricFamily("edge_clock_trusted", "1 when the clock may be used for tokens",
                                value=float(p.clock.trusted()[0]))
        camera = p.camera.status()
        yield GaugeMetricFamily("edge_camera_up", "1 while camera frames are flowing", value=float(camera.ok))
        yield CounterMetricFamily("edge_camera_reopens", "Times the camera was reopened after a failure",
                                  value=camera.reopens)
        yield CounterMetricFamily("edge_camera_skipped_frames", "Frames sessions passed over while busy with an "
                                  "earlier one (the board is slower than the camera)", value=camera.skipped)
        if p.syncer is not None and p.syncer.last_sync:
            yield GaugeMetricFamily("edge_registry_last_sync_timestamp_seconds",
                                    "Unix time of the last complete registry sync", value=p.syncer.last_sync)
        if p.deliverer is not None:
            stats = p.deliverer.stats
            yield CounterMetricFamily("edge_delivery_clock_rejections", "Tokens the registry refused for their time "
                                      "(kept for retry: a clock is wrong)", value=stats.clock_rejections)
            family = GaugeMetricFamily("edge_delivery_last_success_timestamp_seconds",
                                       "Unix time of the last successful delivery round")
            if stats.last_success:
                family.add_metric([], stats.last_success)
                yield family
        if self.certificates:
            expiry = GaugeMetricFamily("edge_tls_certificate_expiry_timestamp_seconds",
                                       "Unix time at which a TLS certificate this process loaded expires",
                                       labels=["certificate"])
            for life in self.certificates:
                expiry.add_metric([life.role], life.not_after)
            yield expiry


class PrometheusEndpoint:
    """A CollectorRegistry served over HTTP on demand (the daemon's and the registry's metrics).
    ``setting`` names the option for the error when the address cannot be served."""

    setting = "server.metrics_address"

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.port: int | None = None
        self._server: Any = None

    def serve(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        try:
            self._server, _ = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot serve metrics on {address}: {exc}", key=self.setting,
                              code="listen_failed") from exc
        self.port = int(self._server.server_port)
        return self.port

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class Metrics(PrometheusEndpoint):
    def __init__(self) -> None:
        super().__init__()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Info("edge_build", "Version of the edge package and Python", registry=self.registry).info(
            {"version": __version__, "python": platform.python_version()})
        self.decisions = Counter("edge_verifications", "Verification sessions by decision and first reason",
                                 ["decision", "reason"], registry=self.registry)
        self.rpc_failures = Counter("edge_rpc_failures", "RPCs that ended with a non-OK status",
                                    ["method", "code"], registry=self.registry)
        self.stage_seconds = Histogram("edge_stage_seconds", "Time per pipeline stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        self.delivery_failures = Counter("edge_delivery_failures", "Failed delivery rounds", registry=self.registry)

    def watch(self, parts: Components, certificates: tuple[CertificateLife, ...] = ()) -> None:
        self.registry.register(_StateCollector(parts, certificates))
        if parts.deliverer is not None:
            parts.deliverer.on_failure = self.delivery_failures.inc

    def observe(self, outcome: Outcome) -> None:
        self.decisions.labels(outcome.decision, outcome.reasons[0] if outcome.reasons else "").inc()
        for stage, ms in outcome.timings.items():
            self.stage_seconds.labels(stage).observe(ms / 1000.0)

    def rpc_failed(self, method: str, code: str) -> None:
        self.rpc_failures.labels(method.rsplit("/", 1)[-1], code).inc()
