"""Prometheus metrics (prometheus_client: the standard exposition format, maintained, pure Python).

Served on ``server.metrics_address`` (off by default; bind it to the management network only). Counters
and histograms are updated per session; gauges read the outbox and the sync state when scraped, so they
are never stale. No card id, token id or score of a person appears in a label.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from edge.pipeline import Outcome
    from edge.server.daemon import EdgeDaemon

STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, daemon: EdgeDaemon) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("edge_verifications", "Verification sessions by decision and first reason",
                                 ["decision", "reason"], registry=self.registry)
        self.stage_seconds = Histogram("edge_stage_seconds", "Time per pipeline stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        outbox = daemon.outbox
        Gauge("edge_outbox_pending", "Tokens waiting for delivery to the registry",
              registry=self.registry).set_function(outbox.pending_count)
        Gauge("edge_outbox_rejected", "Tokens the registry refused for good",
              registry=self.registry).set_function(outbox.rejected_count)
        Gauge("edge_templates", "Templates stored on the device",
              registry=self.registry).set_function(daemon.templates.count)
        Gauge("edge_clock_trusted", "1 when the clock may be used for tokens",
              registry=self.registry).set_function(lambda: float(daemon.clock.trusted()[0]))
        if daemon.syncer is not None:
            syncer = daemon.syncer
            Gauge("edge_registry_sync_age_seconds", "Seconds since the last complete registry sync",
                  registry=self.registry).set_function(syncer.age_s)
        if daemon.deliverer is not None:
            stats = daemon.deliverer.stats
            Gauge("edge_delivery_failures", "Failed delivery rounds since start",
                  registry=self.registry).set_function(lambda: stats.failures)
            Gauge("edge_delivery_last_success_age_seconds", "Seconds since the last successful delivery round",
                  registry=self.registry).set_function(
                      lambda: time.time() - stats.last_success if stats.last_success else -1.0)

    def observe(self, outcome: Outcome) -> None:
        self.decisions.labels(outcome.decision, outcome.reasons[0] if outcome.reasons else "").inc()
        for stage, ms in outcome.timings.items():
            self.stage_seconds.labels(stage).observe(ms / 1000.0)

    def serve(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        self._server, _ = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
