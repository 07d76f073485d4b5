"""Commands import only what they use (issue 13): no Numba, gRPC or liveness code for a match, no models or
gRPC for a card check; measured on the real command, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, json, sys
from edge.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    result = json.loads(out.stdout.splitlines()[-1])
    return set(result["modules"])


@pytest.mark.slow
def test_a_match_loads_no_numba_grpc_or_liveness(testdata):
    image = str(testdata / "faces" / "people" / "obama" / "obama.jpg")
    modules = loaded("match", "--json", image, image)
    assert "onnxruntime" in modules  # it did run the models
    assert not {m for m in modules if m.split(".")[0] in ("numba", "grpc", "llvmlite")}
    assert not {m for m in modules if m.startswith(("edge.liveness", "edge.server", "edge.registry_client"))}


def test_a_card_check_loads_no_models_and_no_grpc(tmp_path):
    from edge.demo import DevIssuer

    issuer = DevIssuer(tmp_path / "issuer")
    text, _ = issuer.issue(b"\x01" * 32, site="ward-7")
    modules = loaded("card", "verify", "--json", "--trust", str(issuer.trust_path), text)
    assert "edge.credential.verifier" in modules
    assert not {m for m in modules if m.split(".")[0] in ("onnxruntime", "numba", "grpc")}
