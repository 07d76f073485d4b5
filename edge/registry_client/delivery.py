"""Background delivery of the outbox to the registry: batches, exponential back-off with jitter.

At-least-once: a token is marked delivered only after the registry answers STORED or DUPLICATE, so a
crash between the answer and the mark just sends it again (the registry stores it once). A REJECTED
token will never be accepted; it is parked with its reason (visible in health) instead of retried, except
when the registry refused its time (``stale_iat``): that says the device's clock or the registry's is
wrong, not that the token is bad, so it stays queued, is retried every ``clock_retry_s`` and is alarmed.
The same for ``wrong_site``: the registry holds the device under another site than the one it signs for,
a registration mistake an operator corrects (before, every token of such a gate was parked for good).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.errors import RegistryUnavailable
from edge.registry_client.outbox import Outbox
from edge.registry_client.transport import IngestResult, RegistryTransport

log = logging.getLogger(__name__)
#: Registry rejections that blame a clock, not the token: kept for retry.
CLOCK_REASONS = frozenset({"stale_iat"})
#: Rejections that an operator resolves at the registry, with what the log tells them: kept for retry too.
OPERATOR_ADVICE = {
    "wrong_site": ("the registry holds this device under another site than the [site] id it signs for: "
                   "register it again with the right --site (or correct [site] id); kept for retry"),
    "device_rate": ("the registry refused more tokens of this device for that day (its "
                    "--max-tokens-per-device-day cap): raise the cap if this gate is sound; kept for retry"),
}
OPERATOR_REASONS = frozenset(OPERATOR_ADVICE)
#: Every rejection kept for retry.
RETRIED_REASONS = CLOCK_REASONS | OPERATOR_REASONS
#: What the log says of such a rejection: a token queued for days (a long outage, a station packed away
#: between campaigns) is older than the registry's window, which its operator can widen; a recent one means
#: a clock is wrong.
STALE_ADVICE = ("the registry refused a token queued for days as too old: raise its --max-token-age-s to take "
                "it; kept for retry")
CLOCK_ADVICE = "the registry refused a token's time: check this device's clock and the registry's; kept for retry"


@dataclass
class DeliveryStats:
    delivered: int = 0
    rejected: int = 0
    failures: int = 0
    last_error: str = ""
    last_success: float = 0.0
    clock_rejections: int = 0
    rejections: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=100))


class Deliverer:
    def __init__(self, outbox: Outbox, transport: RegistryTransport, *, batch: int = 100, base_delay_s: float = 0.5,
                 max_delay_s: float = 60.0, idle_s: float = 1.0, max_per_s: float = 50.0,
                 clock_retry_s: float = 300.0, keep_delivered_s: float = 30 * 86400.0,
                 keep_rejected_s: float = 90 * 86400.0,
                 prune_every_s: float = 3600.0) -> None:
        """``max_per_s`` caps the drain rate so a registry coming back from an outage is not flooded by
        every gate's backlog at once. Delivered tokens older than ``keep_delivered_s`` are deleted from the
        outbox every ``prune_every_s`` (``Outbox.prune_delivered``)."""
        self.outbox = outbox
        self.transport = transport
        self.batch = batch
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.idle_s = idle_s
        self.max_per_s = max_per_s
        self.clock_retry_s = clock_retry_s
        self.keep_delivered_s = keep_delivered_s
        self.keep_rejected_s = keep_rejected_s
        self.prune_every_s = prune_every_s
        self._next_prune = 0.0
        self.on_failure: Callable[[], None] = lambda: None
        self.stats = DeliveryStats()
        self._consecutive_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backoff(self) -> float:
        """Full-jitter exponential back-off: uniform in [0.5, 1] x min(max, base x 2^failures)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** min(self._consecutive_failures, 16)))
        return ceiling * random.uniform(0.5, 1.0)

    def run_once(self) -> int:
        """Deliver one batch; returns how many tokens left the queue (delivered or parked)."""
        pending = self.outbox.pending(self.batch)
        if not pending:
            return 0
        try:
            results = self.transport.ingest([token for _, token, _ in pending])
        except RegistryUnavailable as exc:
            self._consecutive_failures += 1
            self.stats.failures += 1
            self.on_failure()
            self.stats.last_error = exc.message
            retry_at = time.time() + self.backoff()
            for token_id, _, _ in pending:
                self.outbox.mark_failed(token_id, retry_at)
            log.warning("registry unavailable, will retry", extra={"fields": {
                "pending": len(pending), "retry_in_s": round(retry_at - time.time(), 2), "error": exc.code}})
            return 0
        self._consecutive_failures = 0
        done = [r.token_id for r in results if r.status in ("stored", "duplicate")]
        self.outbox.mark_delivered(done)
        refused_time = [r.token_id for r in results if r.status == "rejected" and r.reason in CLOCK_REASONS]
        queued_since = self.outbox.created(refused_time) if refused_time else {}
        # One log line per kind of refusal and call, with a count and a few token ids, never one per token:
        # a backlog of 10,000 tokens refused as too old would write 10,000 lines every clock_retry_s, and
        # journald's rate limit would then drop the daemon's other lines with them.
        lines: dict[str, dict] = {}

        def note(message: str, r: IngestResult, **fields: float) -> None:
            line = lines.setdefault(message, {"tokens": 0, "reasons": collections.Counter(), "token_ids": []})
            line["tokens"] += 1
            line["reasons"][r.reason] += 1
            line["token_ids"] += [r.token_id] if len(line["token_ids"]) < 5 else []
            for key, value in fields.items():  # the worst of the call (queued_days: the oldest token)
                line[key] = max(line.get(key, value), value)

        for r in results:
            if r.status == "rejected" and r.reason in OPERATOR_REASONS:
                self.outbox.mark_failed(r.token_id, time.time() + self.clock_retry_s)
                note(OPERATOR_ADVICE[r.reason], r)
            elif r.status == "rejected" and r.reason in CLOCK_REASONS:
                self.stats.clock_rejections += 1
                self.outbox.mark_failed(r.token_id, time.time() + self.clock_retry_s)
                queued_days = (time.time() - queued_since.get(r.token_id, time.time())) / 86400
                note(STALE_ADVICE if queued_days > 1 else CLOCK_ADVICE, r, queued_days=round(queued_days, 1))
            elif r.status == "rejected":
                self.outbox.mark_rejected(r.token_id, r.reason)
                self.stats.rejections.append((r.token_id, r.reason))
                note("token rejected by the registry", r)
        for message, fields in lines.items():
            log.error(message, extra={"fields": {**fields, "reasons": dict(fields["reasons"])}})
        self.stats.delivered += len(done)
        self.stats.rejected += sum(1 for r in results if r.status == "rejected" and r.reason not in RETRIED_REASONS)
        self.stats.last_success = time.time()
        return len(results)

    def prune_if_due(self, now: float | None = None) -> int:
        """Delete the delivered tokens past their retention, at most once per ``prune_every_s``."""
        now = time.time() if now is None else now
        if now < self._next_prune:
            return 0
        self._next_prune = now + self.prune_every_s
        pruned = self.outbox.prune_delivered(self.keep_delivered_s, now, keep_rejected_s=self.keep_rejected_s)
        if pruned:
            log.info("delivered tokens pruned", extra={"fields": {"pruned": pruned,
                                                                  "kept_days": self.keep_delivered_s / 86400}})
        return pruned

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                moved = self.run_once()
                self.prune_if_due()
            except Exception:  # never let the delivery thread die; the next round retries
                log.exception("delivery round failed")
                moved = 0
            if not moved:
                self._stop.wait(self.idle_s)
            else:
                self._stop.wait(max(0.0, moved / self.max_per_s - (time.monotonic() - began)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
