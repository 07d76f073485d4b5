"""`edge demo --scenario escort --json` from the command line: every step gives its expected outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_escort_story_runs_green(testdata, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--scenario", "escort", "--json", "--workdir",
                             str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "EDGE_TESTDATA": str(testdata)})
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["step"] for s in steps] == ["admit", "issue_permit", "second_permit_refused", "allowed_at_ward_gate",
                                          "denied_at_other_ward", "discharge", "denied_after_discharge",
                                          "staff_override", "override_in_audit"]
    assert all(s["expected"] for s in steps)
    assert all(set(s) >= {"step", "decision", "reasons", "expected"} for s in steps)
    by_step = {s["step"]: s for s in steps}
    assert by_step["denied_after_discharge"]["reasons"] == ["CARD_REVOKED"]
    assert by_step["second_permit_refused"]["reasons"] == ["escort_limit"]


def test_the_vaccination_scenario_says_it_is_not_there_yet():
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--scenario", "vaccination"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "issue 12" in result.stderr
