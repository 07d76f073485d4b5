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
    for package, stem in (("edge", "edge"), ("registry", "registry")):
        for name in (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"):
            generated = tmp_path / package / "v1" / name
            committed = ROOT / "edge" / "proto_gen" / package / "v1" / name
            assert filecmp.cmp(generated, committed, shallow=False), name
