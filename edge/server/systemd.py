"""sd_notify(3) in a few lines: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 to systemd.

The protocol is one datagram per message on the unix socket named by ``$NOTIFY_SOCKET`` (a leading ``@``
means the abstract namespace). Outside systemd the variable is unset and every call is a no-op. The
watchdog period comes from ``$WATCHDOG_USEC`` (only when ``$WATCHDOG_PID`` is unset or ours): pinging every
half period is what sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *lines: str) -> bool:
        """Send one message (``KEY=value`` lines); False when systemd is not listening."""
        if self._socket is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode(), self._address)
            return True
        except OSError as exc:  # systemd gone or socket full: never fatal for the daemon
            log.warning("sd_notify failed", extra={"fields": {"error": str(exc)}})
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
