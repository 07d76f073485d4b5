"""`edge demo --scenario escort|vaccination --json` from the command line: every step gives its expected
outcome."""

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


def test_the_vaccination_story_runs_green(testdata, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--scenario", "vaccination", "--json",
                             "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "EDGE_TESTDATA": str(testdata)})
    assert result.returncode == 0, result.stderr[-2000:]
    steps = {s["step"]: s for s in map(json.loads, result.stdout.splitlines())}
    assert list(steps) == ["no_infant_template", "delegation_issued", "guardian_for_infant", "vaccination_recorded",
                           "second_record_refused", "teen_alone", "expired_delegation_refused"]
    assert all(s["expected"] for s in steps.values())
    assert steps["vaccination_recorded"]["fhir_vaccine"]["system"] == "http://hl7.org/fhir/sid/cvx"
    assert steps["expired_delegation_refused"]["reasons"] == ["DELEGATION_EXPIRED"]
