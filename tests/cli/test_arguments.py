"""Numeric options are checked by argparse before any work: a count, a timeout or a threshold outside its
range is a usage error (exit 2) naming the option, never a silent empty run or a traceback."""

import pytest

from edge.cli.main import main


@pytest.mark.parametrize("argv, option", [
    (["liveness", "--max-frames", "0", "clip.mp4"], "--max-frames"),
    (["liveness", "--max-frames", "-5", "clip.mp4"], "--max-frames"),
    (["eval", "liveness-set", "out", "--per-type", "-3"], "--per-type"),
    (["eval", "liveness-set", "out", "--per-type", "0"], "--per-type"),
    (["eval", "liveness-set", "out", "--seed", "-1"], "--seed"),
    (["match", "--threshold", "nan", "a.jpg", "b.jpg"], "--threshold"),
    (["match", "--threshold", "1.5", "a.jpg", "b.jpg"], "--threshold"),
    (["client", "health", "--socket", "x.sock", "--timeout", "0"], "--timeout"),
    (["client", "health", "--socket", "x.sock", "--timeout", "inf"], "--timeout"),
    (["registry", "serve", "--max-token-age-s", "0", "--plaintext"], "--max-token-age-s"),
    (["registry", "issue-permit", "p1234", "--address", "x:1", "--template-sha256", "00" * 32,
      "--condition-until", "-1"], "--condition-until"),
    (["calibrate", "--thresholds", "0.4,inf", "folder"], "--thresholds"),
])
def test_an_out_of_range_number_is_a_usage_error_naming_the_option(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert option in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_a_path_the_system_refuses_is_one_line_and_exit_1(capsys, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    for argv in (["card", "init-issuer", str(taken)],
                 ["ca", "init", str(taken / "ca")]):
        assert main(argv) == 1  # not 5: the unit's RestartPreventExitStatus=5 is kept for start-up refusals
        err = capsys.readouterr().err
        assert str(taken) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert taken.read_text() == "mine"


def test_a_nonce_without_a_challenge_is_not_silently_ignored(capsys):
    assert main(["liveness", "--nonce", "00" * 16, "clip.mp4"]) == 2
    assert "--challenge" in capsys.readouterr().err
