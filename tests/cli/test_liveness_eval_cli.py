"""`edge eval liveness-set --challenge-set` and `edge eval liveness --challenge`, end to end on a small set."""

import json
import subprocess
import sys

import pytest

from edge.liveness.temporal import Challenge


def _edge(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "edge", "eval", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def small_data(testdata, tmp_path_factory):
    """The shared data with one of the twelve live clips (it has clear turns both ways), to keep this quick."""
    root = tmp_path_factory.mktemp("data")
    (root / "video" / "live").mkdir(parents=True)
    (root / "faces").mkdir()
    (root / "faces" / "people").symlink_to(testdata / "faces" / "people")
    (root / "video" / "short_hamilton_clip.mp4").symlink_to(testdata / "video" / "short_hamilton_clip.mp4")
    for name in ("d3.mp4",):
        (root / "video" / "live" / name).symlink_to(testdata / "video" / "live" / name)
    return root


@pytest.mark.slow
def test_challenge_set_is_written_with_nonces_and_evaluated_per_mode_and_pad(small_data, tmp_path):
    out = tmp_path / "set"
    made = _edge("liveness-set", str(out), "--data", str(small_data), "--per-type", "1", "--challenge-set")
    assert made.returncode == 0, made.stderr
    counts = json.loads(made.stdout)["counts"]
    assert counts["challenge/live"] >= 2 and counts["challenge/attack_replayed_turn"] == counts["challenge/live"]
    assert counts["attack_bent_photo_horizontal"] == 1 and counts["challenge/attack_flat_photo_turned"] == 1
    for item in (out / "challenge").glob("*/*"):
        nonce = bytes.fromhex((item / "nonce.hex").read_text().strip())
        assert len(nonce) == 16 and Challenge.from_nonce(nonce).direction in ("left", "right")
        assert len(list(item.glob("*.jpg"))) >= 84  # 0.8 of the 3.5 s window at least

    report = _edge("liveness", str(out), "--challenge")
    assert report.returncode == 0, report.stderr
    result = json.loads(report.stdout)
    for mode, prefix in (("passive", ""), ("challenge", "challenge/")):
        assert "without_pad" in result[mode]
        for found in result[mode].values():
            for label, numbers in found["attacks"].items():
                assert numbers["presentations"] == counts[prefix + label]
                assert numbers["apcer"] is None or 0.0 <= numbers["apcer"] <= numbers["apcer_upper95"] <= 1.0
            assert found["live"]["presentations"] == counts[prefix + "live"]

    # A challenge presentation without its nonce cannot be judged: a clear refusal, not a random nonce.
    nonce_file = next((out / "challenge" / "live").glob("*/nonce.hex"))
    nonce_file.write_text("not hex\n")
    refused = _edge("liveness", str(out), "--challenge")
    assert refused.returncode == 2 and "nonce.hex" in refused.stderr and "Traceback" not in refused.stderr
    nonce_file.unlink()
    refused = _edge("liveness", str(out), "--challenge")
    assert refused.returncode == 2 and "nonce.hex" in refused.stderr


def test_challenge_mode_needs_challenge_presentations(tmp_path):
    (tmp_path / "live").mkdir()
    refused = _edge("liveness", str(tmp_path), "--challenge", timeout=120)
    assert refused.returncode == 2 and "challenge" in refused.stderr


@pytest.mark.parametrize("nonce", ["zz", "00ff"])
def test_a_bad_challenge_nonce_is_a_usage_error(tmp_path, nonce):
    run = subprocess.run([sys.executable, "-m", "edge", "liveness", str(tmp_path), "--challenge", "--nonce", nonce],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--nonce" in run.stderr and "Traceback" not in run.stderr


def test_an_evaluation_folder_without_presentations_is_a_usage_error(tmp_path):
    (tmp_path / "notes").mkdir()
    refused = _edge("liveness", str(tmp_path), timeout=120)
    assert refused.returncode == 2 and "no presentations" in refused.stderr and refused.stdout == ""


@pytest.mark.slow
def test_an_unreadable_presentation_is_listed_and_the_rest_still_judged(testdata, tmp_path):
    import shutil

    live = tmp_path / "live" / "portrait"
    live.mkdir(parents=True)
    for i in range(5):
        shutil.copy(testdata / "faces/people/obama/obama.jpg", live / f"{i:03d}.jpg")
    broken = tmp_path / "attack_print" / "broken"
    broken.mkdir(parents=True)
    (broken / "000.jpg").write_bytes(b"\xff\xd8 truncated")
    report = _edge("liveness", str(tmp_path), timeout=300)
    assert report.returncode == 0, report.stderr
    result = json.loads(report.stdout)
    assert result["unreadable"] == [str(broken)]
    assert result["passive"]["without_pad"]["live"]["presentations"] == 1
    assert result["passive"]["without_pad"]["attacks"] == {}


def test_a_nonce_file_that_is_not_text_reads_as_no_nonce(tmp_path):
    from edge.cli.liveness import NONCE_FILE, _read_nonce

    (tmp_path / NONCE_FILE).write_bytes(b"\xff\xfe\xfa")
    assert _read_nonce(tmp_path) is None
    (tmp_path / NONCE_FILE).write_text("00" * 16 + "\n")
    assert _read_nonce(tmp_path) == bytes(16)


def test_edge_liveness_with_a_sites_config_judges_by_that_sites_rules(testdata, tmp_path):
    """`edge liveness --config SITE` is "the checker the gate would run"; it took the default rules whatever
    the config said, so a site checking its own liveness settings saw another gate's answer."""
    from edge.demo import speaker_frames, write_scene

    scene = write_scene(tmp_path / "speaker", None, speaker_frames(testdata))
    site = tmp_path / "site.toml"
    site.write_text("[liveness]\nmin_eye_distance_px = 400\n")  # this speaker's face (31 px) is too small there

    def judged(*extra):
        run = subprocess.run([sys.executable, "-m", "edge", "liveness", "--json", "--no-pad", *extra, str(scene)],
                             capture_output=True, text=True, timeout=300)
        return json.loads(run.stdout)

    assert judged()["live"] is True
    refused = judged("--config", str(site))
    assert refused["live"] is False and refused["reasons"] == ["face_too_small"]
