"""Shared fixtures: the real test data folder and the face stage (models loaded once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("EDGE_TESTDATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def testdata() -> Path:
    path = data_dir()
    if not (path / "faces" / "people").is_dir():
        pytest.skip(f"shared test data not found at {path} (set EDGE_TESTDATA to its folder)")
    return path


@pytest.fixture(scope="session")
def face_stage():
    from edge.assembly import build_face_stage
    from edge.config import load_config

    stage = build_face_stage(load_config())
    stage.warm_up()
    return stage
