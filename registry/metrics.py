"""The registry's Prometheus metrics (prometheus_client, as the device's edge/server/metrics.py).

Served on ``edge registry serve --metrics-address HOST:PORT`` (off by default; bind it to the management
network). What they are for: a gate whose delivered tokens jump far above its usual rate is a compromised or
broken gate (its tokens are signed, so no rate cap can tell a flood from a backlog after an outage; an alert
on ``rate(registry_tokens_total[5m])`` per device can, and the operator suspends it); a gate whose tokens are
refused names the reason; ``registry_database_up`` follows the health probe. Labels carry device ids and
reason codes, never a card id, token id or person.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, start_http_server

from edge.errors import ConfigError


class RegistryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.tokens = Counter("registry_tokens", "Tokens delivered, by device, outcome (stored, duplicate, "
                              "rejected) and refusal reason", ["device", "outcome", "reason"], registry=self.registry)
        self.database_up = Gauge("registry_database_up", "1 while the database answers the health probe",
                                 registry=self.registry)
        self.port: int | None = None
        self._server: Any = None

    def delivered(self, device: str, outcome: str, reason: str = "") -> None:
        self.tokens.labels(device, outcome, reason).inc()

    def serve(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        try:
            self._server, _ = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot serve metrics on {address}: {exc}", key="--metrics-address",
                              code="listen_failed") from exc
        self.port = int(self._server.server_port)
        return self.port

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
