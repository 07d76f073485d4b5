import base64
import json
import subprocess
import sys

import cv2
import numpy as np

from edge.qr.synthetic import qr_modules, render_symbol


def edge(*args):
    r = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def test_qr_json_contract(tmp_path):
    good = tmp_path / "code.png"
    symbol = render_symbol(qr_modules("EHC1:HELLO"), 5)
    cv2.imwrite(str(good), symbol)
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((50, 50), 255, np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    code, out, _ = edge("qr", "--json", str(good), str(empty), str(bad))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert rows[0] == {"path": str(good), "codes": [{"text": "EHC1:HELLO",
                                                    "bytes_b64": base64.b64encode(b"EHC1:HELLO").decode()}],
                       "error": None}
    assert rows[1] == {"path": str(empty), "codes": [], "error": None}
    assert rows[2]["error"] == "image_unreadable" and rows[2]["codes"] == []


def test_card_issue_verify_tamper_revoke(tmp_path):
    issuer = tmp_path / "issuer"
    assert edge("card", "init-issuer", str(issuer), "--issuer", "hosp")[0] == 0
    assert edge("card", "init-issuer", str(issuer))[0] == 2  # never overwrites a key
    code, out, _ = edge("card", "issue", "--issuer-dir", str(issuer), "--type", "health_card", "--site", "gate-1",
                        "--out", str(tmp_path / "c"))
    assert code == 0
    issued = json.loads(out)
    assert issued["qr_version"] <= 22
    trust = str(issuer / "trust.json")
    # From the PNG, through the QR stage.
    code, out, _ = edge("card", "verify", "--json", "--trust", trust, "--site", "gate-1", str(tmp_path / "c.png"))
    result = json.loads(out)
    assert code == 0 and result["valid"] and result["card"]["card_id"] == issued["card_id"]
    # A photo of the card on a phone screen (it takes one of the stage's retries) beside a poster's code:
    # the search went no further than the poster's, so the card was "not valid".
    import cv2
    import numpy as np

    from edge.qr import synthetic
    from edge.qr.stage import QRStage, to_grey

    url = "https://hospital.example/wifi"
    poster = synthetic.render_symbol(synthetic.qr_modules(url), 3)
    unhurried = QRStage(budget_ms=10_000)

    def needs_a_retry(photo) -> bool:
        first_pass = [c.text for c in unhurried._run_all(to_grey(photo), "original", 1.0)]
        searched = unhurried.decode(photo, wanted=lambda c: c.text.startswith("EHC1:"))
        return first_pass == [url] and issued["text"] in [c.text for c in searched]

    for seed in range(20):  # the card's text is new every run, and so is its rendering
        photo = synthetic.make_sample("phone_screen", issued["text"], np.random.default_rng(seed)).frame
        photo[4:4 + poster.shape[0], 4:4 + poster.shape[1]] = poster[:, :, None]
        if needs_a_retry(photo):
            break
    else:
        raise AssertionError("no phone-screen rendering of this card that the first pass misses and a retry reads")
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    (tmp_path / "unhurried.toml").write_text("[qr]\nbudget_ms = 10000\n")  # retries, whatever this machine's load
    code, out, _ = edge("card", "verify", "--json", "--trust", trust, "--site", "gate-1", "--config",
                        str(tmp_path / "unhurried.toml"), str(tmp_path / "photo.png"))
    assert code == 0 and json.loads(out)["card"]["card_id"] == issued["card_id"], out
    # Tampered text.
    text = issued["text"]
    tampered = text[:-10] + ("A" if text[-10] != "A" else "B") + text[-9:]
    code, out, _ = edge("card", "verify", "--json", "--trust", trust, "--site", "gate-1", tampered)
    assert code == 6 and json.loads(out)["valid"] is False
    # Revoked.
    edge("card", "revoke", "--issuer-dir", str(issuer), issued["card_id"])
    code, out, _ = edge("card", "verify", "--json", "--trust", trust, "--revocations", str(issuer / "revocations.json"),
                        "--site", "gate-1", text)
    assert code == 6 and json.loads(out)["reason"] == "card_revoked"
    # Expired: issued two hours ago for one (`card issue` refuses a lifetime that has already ended).
    import hashlib
    import time

    from edge.credential.issuer import CardIssuer
    from edge.credential.keys import load_private_pem

    old_text, _ = CardIssuer(load_private_pem((issuer / "issuer_key.pem").read_bytes()), "hosp").issue(
        card_type="health_card", holder=b"\x01" * 16, site="gate-1", template_sha256=hashlib.sha256(b"").digest(),
        model_id="sface-2021dec-fp32", valid_for_s=3600, now=time.time() - 7200)
    code, out, _ = edge("card", "verify", "--json", "--trust", trust, "--site", "gate-1", old_text)
    assert code == 6 and json.loads(out)["reason"] == "card_expired"


def test_card_verify_image_without_code(tmp_path):
    issuer = tmp_path / "issuer"
    edge("card", "init-issuer", str(issuer))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64), 200, np.uint8))
    code, out, _ = edge("card", "verify", "--json", "--trust", str(issuer / "trust.json"), str(blank))
    assert code == 6 and json.loads(out)["reason"] == "qr_not_found"


def test_card_issue_refuses_bad_options_and_writes_nothing(tmp_path):
    issuer = tmp_path / "issuer"
    assert edge("card", "init-issuer", str(issuer))[0] == 0
    for option, value, says in (("--valid-for", "-5", "valid_for_s"), ("--holder", "abcd", "--holder"),
                                ("--template-sha256", "zz", "--template-sha256"), ("--window", "5,3", "window"),
                                ("--model-id", "sface-2021dec-fp16", "--model-id")):
        out = tmp_path / option.strip("-")
        code, stdout, stderr = edge("card", "issue", "--issuer-dir", str(issuer), "--type", "health_card",
                                    "--site", "ward-7", "--out", str(out), option, value)
        assert code == 2 and says in stderr and stdout == "", (option, stderr)
        assert not out.with_suffix(".txt").exists() and not out.with_suffix(".png").exists()
