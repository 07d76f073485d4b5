"""Progress of a long command on stderr: one structured event at most every ``every_s`` seconds, and at the
end, so an operator sees that ``calibrate`` or ``eval`` is working (stdout stays the machine-readable
result)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("edge.progress")


class Progress:
    def __init__(self, what: str, total: int | None = None, *, every_s: float = 1.0) -> None:
        self.what = what
        self.total = total
        self.every_s = every_s
        self.done = 0
        self._began = time.monotonic()
        self._last = self._began

    def step(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit("progress")

    def finish(self) -> None:
        self._emit("finished")

    def _emit(self, event: str) -> None:
        fields: dict[str, object] = {"what": self.what, "done": self.done,
                                     "elapsed_s": round(time.monotonic() - self._began, 1)}
        if self.total:
            fields["total"] = self.total
        log.warning(event, extra={"fields": fields})
