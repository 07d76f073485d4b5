"""Every shipped board and site profile loads, alone and merged, into the strict config."""

from pathlib import Path

import pytest

from edge.config import load_config

ROOT = Path(__file__).resolve().parents[1] / "firmware_configs"
BOARDS = sorted((ROOT / "boards").glob("*.toml"))
SITES = sorted((ROOT / "sites").glob("*.toml"))


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.stem)
@pytest.mark.parametrize("site", SITES, ids=lambda p: p.stem)
def test_profiles_merge_and_validate(board, site):
    config = load_config(board, site)
    assert config.site.require_challenge  # every shipped site profile requires the challenge
    assert config.face.match_threshold >= 0.5


def test_profiles_exist():
    assert len(BOARDS) >= 2 and len(SITES) >= 2
    assert (ROOT / "systemd" / "edge.service").is_file()
