"""The registry's Prometheus metrics (prometheus_client, as the device's edge/server/metrics.py).

Served on ``edge registry serve --metrics-address HOST:PORT`` (off by default; bind it to the management
network). What they are for: a gate whose delivered tokens jump far above its usual rate is a compromised or
broken gate (its tokens are signed, so no rate cap can tell a flood from a backlog after an outage; an alert
on ``rate(registry_tokens_total[5m])`` per device can, and the operator suspends it); a gate whose tokens are
refused names the reason; ``registry_database_up`` follows the health probe. Labels carry device ids and
reason codes, never a card id, token id or person.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, ProcessCollector

from edge.server.metrics import PrometheusEndpoint


class RegistryMetrics(PrometheusEndpoint):
    setting = "--metrics-address"

    def __init__(self) -> None:
        super().__init__()
        ProcessCollector(registry=self.registry)
        self.tokens = Counter("registry_tokens", "Tokens delivered, by device, outcome (stored, duplicate, "
                              "rejected) and refusal reason", ["device", "outcome", "reason"], registry=self.registry)
        self.database_up = Gauge("registry_database_up", "1 while the database answers the health probe",
                                 registry=self.registry)

    def delivered(self, device: str, outcome: str, reason: str = "") -> None:
        self.tokens.labels(device, outcome, reason).inc()
