"""Start a throwaway PostgreSQL server from Debian's binaries (tests and benchmarks; never production).

initdb refuses to run as root, so under root the server runs as the ``postgres`` user the Debian package
creates. The cluster lives in a temporary folder with fsync off and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayServer:
    """A fresh cluster in a temporary folder; ``url`` is ``postgresql://edge@127.0.0.1:PORT`` (no database
    part). ``stop`` and ``start`` take the same server down and up again (tests of a registry that loses
    its database); ``remove`` stops it and deletes the folder."""

    def __init__(self) -> None:
        bindir = server_binaries()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self._bindir = bindir
        self._root = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self._root, "postgres", "postgres")
            self._prefix = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        self.url = f"postgresql://edge@127.0.0.1:{self.port}"
        subprocess.run([*self._prefix, str(bindir / "initdb"), "-D", str(self._root / "data"), "-A", "trust", "-U",
                        "edge", "--no-sync"], check=True, capture_output=True)
        self.start()

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self._prefix, str(self._bindir / "pg_ctl"), "-D", str(self._root / "data"), *args],
                       check=check, capture_output=True)

    def start(self) -> None:
        self._pg_ctl("-l", str(self._root / "log"), "-w", "-o", f"-p {self.port} -k {self._root} -c "
                     "listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Yield ``postgresql://edge@127.0.0.1:PORT`` (no database part) for a fresh cluster."""
    server = ThrowawayServer()
    try:
        yield server.url
    finally:
        server.remove()


def create_database(server: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"
