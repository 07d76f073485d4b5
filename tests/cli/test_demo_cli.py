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
