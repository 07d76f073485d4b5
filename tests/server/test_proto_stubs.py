import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_the_generator(tmp_path):
    pytest.importorskip("grpc_tools")
    if not shutil.which("sed"):
        pytest.skip("sed not available")
    subprocess.run([str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True, cwd=ROOT)
    for name in ("edge_pb2.py", "edge_pb2.pyi", "edge_pb2_grpc.py"):
        assert filecmp.cmp(tmp_path / "edge" / "v1" / name, ROOT / "edge" / "proto_gen" / "edge" / "v1" / name,
                           shallow=False), name
