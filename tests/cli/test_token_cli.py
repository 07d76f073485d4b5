import json
import subprocess
import sys

from edge.security.clock import ClockGuard
from edge.security.keys import DeviceKey
from edge.security.tokens import TokenSigner

from ..security.test_security import content


def test_token_verify_cli(tmp_path):
    key = DeviceKey.load_or_create(tmp_path)
    token, _ = TokenSigner(key, "dev-1", clock=ClockGuard()).sign(content())
    (tmp_path / "pub.pem").write_bytes(key.public_pem())
    run = lambda *a: subprocess.run([sys.executable, "-m", "edge", "token", "verify", "--json", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    ok = run(token.hex(), "--key", str(tmp_path / "pub.pem"))
    assert ok.returncode == 0
    out = json.loads(ok.stdout)
    assert out["valid"] and out["claims"]["iss"] == "dev-1" and out["claims"]["decision"] == "ALLOW"
    bad = bytearray(token)
    bad[-3] ^= 1
    refused = run(bytes(bad).hex(), "--key", key.public_raw.hex())
    assert refused.returncode == 6 and json.loads(refused.stdout)["reason"] == "token_signature"


def test_token_verify_reads_base64_of_either_alphabet_and_names_text_that_is_no_token(tmp_path):
    import base64

    key = DeviceKey.load_or_create(tmp_path)
    token, _ = TokenSigner(key, "dev-1", clock=ClockGuard()).sign(content())
    run = lambda *a: subprocess.run([sys.executable, "-m", "edge", "token", "verify", "--json", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    for text in (base64.b64encode(token).decode(), base64.urlsafe_b64encode(token).decode().rstrip("=")):
        ok = run(text, "--key", key.public_raw.hex())
        assert ok.returncode == 0 and json.loads(ok.stdout)["valid"], ok.stderr
    junk = run("not a token!", "--key", key.public_raw.hex())
    assert junk.returncode == 2 and "not hex, base64 or a file" in junk.stderr and junk.stdout == ""
