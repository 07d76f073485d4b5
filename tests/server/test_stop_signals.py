"""SIGTERM reaches `edge serve` and `edge registry serve` whichever of their threads the kernel hands it to.

A process-directed signal goes to any thread that does not block it; the daemon has dozens (grpc,
onnxruntime, Numba). Before the fix the main thread slept in ``Event.wait()``, which only a signal
delivered to the main thread interrupts, so about one SIGTERM in ten under load was never acted on.
These tests deliver the signal to a chosen non-main thread with tgkill(2), which makes the old failure
certain instead of occasional.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import write_config


def signal_a_worker_thread(pid: int, sig: int) -> int:
    """Send ``sig`` to one thread of ``pid`` other than its main thread; returns that thread's id."""
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert tids, f"process {pid} has no thread besides its main thread"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tids[-1], sig) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tids[-1]}, {sig})")
    return tids[-1]


def wait_for_port_file(proc: subprocess.Popen, port_file: Path, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text()):
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)


def test_stop_signals_wakes_the_main_thread_for_a_signal_taken_by_another_thread(tmp_path):
    script = tmp_path / "waiter.py"
    script.write_text(textwrap.dedent("""
        import sys, threading
        from edge.cli.signals import StopSignals
        with StopSignals() as signals:
            threading.Thread(target=threading.Event().wait, daemon=True).start()
            print("ready", flush=True)
            received = signals.wait()
        print(received.name, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        signal_a_worker_thread(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert out.strip() == "SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stop_signals_waits_with_a_timeout_and_still_takes_the_signal_after_it(tmp_path):
    """The registry wakes daily to check its certificates' expiry, and must still stop on SIGTERM."""
    script = tmp_path / "waiter.py"
    script.write_text(textwrap.dedent("""
        from edge.cli.signals import StopSignals
        with StopSignals() as signals:
            print(signals.wait(timeout=0.05), flush=True)
            print("ready", flush=True)
            received = signals.wait()  # blocks again after a wait that timed out
        print(received.name, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "None"
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # well past the first wait's timeout: the second must still be waiting
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0 and out.strip() == "SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_edge_serve_stops_on_a_sigterm_taken_by_a_worker_thread(tmp_path, world):
    config = write_config(tmp_path, world, device_id="edge-tgkill")
    port_file, log = tmp_path / "port", tmp_path / "edge.log"
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--config", str(config), "--port-file",
                                 str(port_file)], stderr=handle)
    try:
        wait_for_port_file(proc, port_file, log)
        signal_a_worker_thread(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
        text = log.read_text()
        assert '"signal": "SIGTERM"' in text and '"stopped"' in text
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_registry_serve_stops_on_a_sigterm_taken_by_a_worker_thread(tmp_path):
    port_file, log = tmp_path / "port", tmp_path / "registry.log"
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "edge", "registry", "serve", "--db",
                                 f"sqlite:///{tmp_path / 'registry.sqlite'}", "--state", str(tmp_path / "state"),
                                 "--address", "127.0.0.1:0", "--plaintext", "--port-file", str(port_file)],
                                stdout=handle, stderr=handle)
    try:
        wait_for_port_file(proc, port_file, log)
        signal_a_worker_thread(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
        assert '"signal": "SIGTERM"' in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
