"""Installs are reproducible and lean: pinned versions that have Raspberry Pi wheels, no dev tools on a board."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_wheels", ROOT / "scripts" / "check_wheels.py")
assert spec and spec.loader
check_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_wheels)


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def test_wheel_tags_a_pi_can_install():
    fits = check_wheels.fits
    assert fits("numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl", "311")
    assert fits("grpcio-1.85.1-cp311-cp311-musllinux_1_2_aarch64.whl", "311")
    assert fits("cryptography-50.0.2-cp39-abi3-manylinux_2_34_aarch64.whl", "311")
    assert fits("cbor2-5.9.0-py3-none-any.whl", "311")
    assert not fits("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl", "311")
    assert not fits("numpy-2.4.6-cp312-cp312-manylinux_2_27_aarch64.whl", "311")
    assert not fits("numpy-2.4.6.tar.gz", "311")


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", dep).group(0)).lower() for dep in wanted}
    assert names - set(pins()) == set()


def test_setup_installs_pinned_wheels_only_and_boards_without_dev_tools():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--only-binary=:all: -c constraints.txt" in setup
    assert "extras='.[fetch]'" in setup and "--board" in setup and "--pi" in setup
    assert "check_wheels.py" in (ROOT / ".ci" / "run").read_text()
