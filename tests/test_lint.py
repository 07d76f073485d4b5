"""ruff and mypy over the whole code base, so CI holds the code to them (generated stubs excluded)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (it comes with .[dev])")
    return path


def test_ruff():
    result = subprocess.run([_tool("ruff"), "check", "edge", "registry", "tests", "bench", "fuzz"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.slow
def test_mypy():
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
