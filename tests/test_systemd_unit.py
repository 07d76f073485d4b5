"""The shipped systemd unit: valid, watched (Type=notify + watchdog), writable Numba cache, hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "firmware_configs" / "systemd" / "edge.service"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (Debian package systemd; scripts/test.sh "
                                          "installs it)")


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def installed_copy(tmp_path: Path) -> Path:
    """The unit as installed from this checkout (the documented install puts the checkout in /opt/edge)."""
    assert (ROOT / ".venv" / "bin" / "edge").exists(), "run scripts/setup.sh first"
    unit = tmp_path / "edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge", str(ROOT)))
    return unit


def test_the_unit_is_watched_and_has_a_writable_numba_cache():
    s = settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) >= 4
    numba = [v for v in s["Environment"] if v.startswith("NUMBA_CACHE_DIR=")]
    assert numba == ["NUMBA_CACHE_DIR=/var/cache/edge/numba"] and s["CacheDirectory"] == ["edge"]
    assert s["ExecStart"][0].startswith("/opt/edge/.venv/bin/edge serve ")
    assert s["ProtectSystem"] == ["strict"]  # so the cache must live under CacheDirectory, not in /opt


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    result = subprocess.run(["systemd-analyze", "verify", str(installed_copy(tmp_path))], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "edge.service" not in result.stderr, result.stderr


@needs_analyze
def test_systemd_analyze_security_scores_at_most_4(tmp_path):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(installed_copy(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for edge\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 4.0, result.stdout
