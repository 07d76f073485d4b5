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


@pytest.mark.parametrize("site", [*SITES, None], ids=lambda p: p.stem if p else "defaults")
def test_a_sessions_budget_leaves_room_for_the_retries_it_allows(site):
    """The longest ordinary session: the card read at the last moment, then every challenge window at its
    longest (prompt at 1.0 s plus the 2.5 s answer) with the 1.5 s settle before each retry. A budget that
    ends it early turns the retry a person was promised into TIME_BUDGET (the ward profile's 12 s did, once
    the settle came in)."""
    from edge.gate.window import RETRY_SETTLE_S
    from edge.liveness.temporal import Challenge

    s = (load_config(site) if site else load_config()).site
    longest_window = 1.0 + Challenge(direction="left", prompt_at_s=1.0).window_s
    needed = s.card_timeout_s + longest_window * (1 + s.challenge_retries) + RETRY_SETTLE_S * s.challenge_retries
    assert s.session_budget_s >= needed + 0.5, (s.session_budget_s, needed)
