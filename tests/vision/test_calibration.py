import numpy as np
import pytest

from edge.vision.calibration import error_rates, pair_scores, threshold_for_fmr


def test_pair_scores_split_by_label():
    def template(x: float, y: float) -> np.ndarray:  # an SFace-sized template in a 2-d subspace
        return np.concatenate([[x, y], np.zeros(126)])

    v = {"a1": template(1.0, 0.0), "a2": template(0.8, 0.6), "b1": template(0.0, 1.0)}
    labels = {"a1": "a", "a2": "a", "b1": "b"}
    s = pair_scores(v, labels)
    np.testing.assert_allclose(sorted(s.genuine), [0.8])
    np.testing.assert_allclose(sorted(s.impostor), [0.0, 0.6])


def test_error_rates_and_threshold_for_fmr():
    from edge.vision.calibration import ScoreSets

    impostor = np.linspace(-0.2, 0.5, 100)
    genuine = np.linspace(0.4, 0.9, 50)
    scores = ScoreSets(genuine, impostor)
    t = threshold_for_fmr(impostor, 0.05)
    fmr, _ = error_rates(scores, t)
    assert fmr <= 0.05
    assert error_rates(scores, np.nextafter(t, -1))[0] > fmr or t == impostor.min()
    t0 = threshold_for_fmr(impostor, 0.0)
    assert error_rates(scores, t0)[0] == 0.0 and t0 > impostor.max()
    with pytest.raises(ValueError):
        threshold_for_fmr(np.array([]), 0.01)


def test_calibrate_command_shows_progress_on_stderr_and_one_result_on_stdout(testdata, tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    people = sorted(p for p in (testdata / "faces" / "people").iterdir() if p.is_dir())[:2]
    for person in people:
        shutil.copytree(person, tmp_path / person.name)
    result = subprocess.run([sys.executable, "-m", "edge", "calibrate", str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and json.loads(result.stdout)["people"] == 2
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "finished"]
    assert finished and finished[-1]["what"] == "embedding images" and finished[-1]["done"] == finished[-1]["total"]


def test_calibrate_scores_a_pair_as_edge_match_does(testdata, tmp_path):
    """A site sets its threshold with `edge calibrate` and then decides with `edge match`, so both must read
    a photograph the same way. A JPEG of 2,640 px is one `edge match` decodes at half size (DCT scaling)."""
    import json
    import subprocess
    import sys

    import cv2

    obama, other = tmp_path / "obama", tmp_path / "other"
    obama.mkdir()
    other.mkdir()
    portrait = cv2.imread(str(testdata / "faces/people/obama/obama2.jpg"))
    large = cv2.resize(portrait, None, fx=2.2, fy=2.2, interpolation=cv2.INTER_CUBIC)
    assert max(large.shape[:2]) >= 2560
    cv2.imwrite(str(obama / "large.jpg"), large, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(obama / "small.jpg"), cv2.imread(str(testdata / "faces/people/obama/obama.jpg")))
    other_person = sorted(p for p in (testdata / "faces/people").iterdir() if p.name != "obama")[0]
    cv2.imwrite(str(other / "one.jpg"), cv2.imread(str(sorted(other_person.iterdir())[0])))

    def edge(*args):
        result = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    [calibrated] = edge("calibrate", str(tmp_path))
    [matched] = edge("match", "--json", str(obama / "large.jpg"), str(obama / "small.jpg"))
    assert calibrated["genuine"]["n"] == 1
    assert abs(calibrated["genuine"]["min"] - matched["similarity"]) < 1e-5


def test_rates_without_pairs_behind_them_are_unknown_not_zero():
    from edge.vision.calibration import ScoreSets

    only_one_person = ScoreSets(genuine=np.array([0.7, 0.8]), impostor=np.array([]))
    assert error_rates(only_one_person, 0.5) == (None, 0.0)
    one_photo_each = ScoreSets(genuine=np.array([]), impostor=np.array([0.1, 0.6]))
    assert error_rates(one_photo_each, 0.5) == (0.5, None)


@pytest.mark.parametrize("option", [["--thresholds", "0.4,abc"], ["--thresholds", "0.4,,0.5"],
                                    ["--thresholds", "nan"], ["--thresholds", "1.5"],
                                    ["--target-fmr", "-0.1"], ["--target-fmr", "1"], ["--target-fmr", "nan"]])
def test_calibrate_refuses_a_bad_option_before_embedding_anything(tmp_path, option):
    import subprocess
    import sys

    (tmp_path / "alice").mkdir()
    result = subprocess.run([sys.executable, "-m", "edge", "calibrate", *option, str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and option[0] in result.stderr
    assert result.stdout == ""


def test_calibrate_on_a_folder_without_images_is_a_usage_error(tmp_path):
    import subprocess
    import sys

    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "notes.txt").write_text("not a photograph")
    result = subprocess.run([sys.executable, "-m", "edge", "calibrate", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "no images" in result.stderr and "Traceback" not in result.stderr
