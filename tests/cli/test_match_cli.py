"""The command-line contract of `edge match` (DESIGN.md), run as a real subprocess."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def edge(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=cwd,
                            timeout=300)
    return result.returncode, result.stdout, result.stderr


def lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_genuine_pair(testdata):
    a = testdata / "faces/people/obama/obama.jpg"
    b = testdata / "faces/people/obama/obama2.jpg"
    code, out, _ = edge("match", "--json", str(a), str(b))
    assert code == 0
    [row] = lines(out)
    assert list(row) == ["a", "b", "similarity", "match", "threshold", "error"]
    assert row["match"] is True and row["error"] is None and row["similarity"] >= row["threshold"]


def test_no_face_single_pair_exit_3(testdata, tmp_path):
    import cv2
    import numpy as np

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    code, out, _ = edge("match", "--json", str(testdata / "faces/people/obama/obama.jpg"), str(blank))
    assert code == 3
    [row] = lines(out)
    assert row == {"a": str(testdata / "faces/people/obama/obama.jpg"), "b": str(blank), "similarity": None,
                   "match": False, "threshold": row["threshold"], "error": "no_face"}


def test_unreadable_exit_4(tmp_path, testdata):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, out, err = edge("match", "--json", str(bad), str(testdata / "faces/people/obama/obama.jpg"))
    assert code == 4
    assert lines(out)[0]["error"] == "image_unreadable"


def test_usage_exit_2():
    assert edge("match", "--json", "only_one.jpg")[0] == 2
    assert edge("match", "--bogus-flag")[0] == 2


def test_pairs_batch_in_order_and_errors_do_not_stop_it(testdata, tmp_path):
    people = testdata / "faces/people"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    pairs = tmp_path / "pairs.csv"
    rows = [(people / "obama/obama.jpg", people / "obama/obama3.jpg"),
            (empty, people / "biden/biden.jpg"),
            (people / "obama/obama.jpg", people / "biden/biden.jpg"),
            (tmp_path / "missing.jpg", people / "biden/biden.jpg"),
            (people / "rose_leslie/img1.jpg", people / "rose_leslie/img2.jpg")]
    pairs.write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows))
    code, out, _ = edge("match", "--json", "--pairs", str(pairs))
    assert code == 0
    got = lines(out)
    assert [r["a"] for r in got] == [str(a) for a, _ in rows]
    assert [r["match"] for r in got] == [True, False, False, False, True]
    assert [r["error"] for r in got] == [None, "image_empty", None, "image_unreadable", None]
    assert got[1]["similarity"] is None


def test_pairs_bad_header_is_usage_error(tmp_path):
    pairs = tmp_path / "p.csv"
    pairs.write_text("left,right\nx.jpg,y.jpg\n")
    assert edge("match", "--json", "--pairs", str(pairs))[0] == 2


def test_human_mode(testdata):
    code, out, _ = edge("match", str(testdata / "faces/people/obama/obama.jpg"),
                        str(testdata / "faces/people/biden/biden.jpg"))
    assert code == 0 and out.startswith("NO MATCH")


def test_the_fused_face_model_keeps_the_contract(testdata, tmp_path):
    """face.model = "sface+dlib": the same fields, its own threshold, and the look-alike pair (the closest
    impostor of the shared portraits) further below the threshold than under SFace alone."""
    config = tmp_path / "fused.toml"
    config.write_text('[face]\nmodel = "sface+dlib"\n')
    people = testdata / "faces/people"
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"a,b\n{people}/obama/obama.jpg,{people}/obama/obama2.jpg\n"
                     f"{people}/angelina_jolie/1.jpg,{people}/kate_siegel/1.jpg\n")
    code, out, _ = edge("match", "--json", "--pairs", str(pairs), "--config", str(config))
    assert code == 0
    genuine, lookalike = lines(out)
    assert list(genuine) == ["a", "b", "similarity", "match", "threshold", "error"]
    assert genuine["threshold"] == 0.49 and genuine["match"] is True
    assert lookalike["match"] is False
    _, out, _ = edge("match", "--json", "--pairs", str(pairs))
    [_, sface_lookalike] = lines(out)
    margin = lookalike["threshold"] - lookalike["similarity"]
    assert margin > sface_lookalike["threshold"] - sface_lookalike["similarity"]  # 0.038 against 0.024


def test_pairs_file_from_a_spreadsheet_with_a_byte_order_mark(testdata, tmp_path):
    """Excel's "CSV UTF-8" starts with a byte order mark; the header is still a,b."""
    people = testdata / "faces/people/obama"
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(f"\ufeffa,b\r\n{people / 'obama.jpg'},{people / 'obama2.jpg'}\r\n".encode())
    code, out, err = edge("match", "--json", "--pairs", str(pairs))
    assert code == 0, err
    assert lines(out)[0]["match"] is True


@pytest.mark.parametrize("content", ["a;b\n", "", "x,y\n"])
def test_a_pairs_file_without_the_a_b_header_is_refused_even_without_rows(tmp_path, content):
    from edge.cli.match import read_pairs

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(content)
    with pytest.raises(ValueError, match="header"):
        read_pairs(str(pairs))
