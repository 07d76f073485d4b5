import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_ends_in_allow_with_a_token_delivered_to_the_registry(testdata, tmp_path):
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--json", "--workdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env={"EDGE_TESTDATA": str(testdata),
                                                                            **__import__("os").environ})
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["decision"] == "ALLOW" and out["token_valid"] and out["delivered_to_registry"]
    assert out["claims"]["iss"] == "edge-demo-1" and out["claims"]["decision"] == "ALLOW"
    audit = subprocess.run([sys.executable, "-m", "edge", "audit", "verify", "--data-dir", str(tmp_path / "device")],
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0 and json.loads(audit.stdout)["valid"]


@pytest.mark.parametrize("scenario", [[], ["--scenario", "escort"], ["--scenario", "vaccination"]])
def test_a_workdir_that_is_a_file_is_refused_with_one_line(testdata, tmp_path, scenario):
    import os

    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--json", "--workdir", str(taken), *scenario],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "EDGE_TESTDATA": str(testdata)})
    assert result.returncode == 5 and result.stdout == ""
    assert "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr
    assert taken.read_text() == "mine"
