import pytest

from edge.config import DEFAULT_MATCH_THRESHOLD, load_config
from edge.errors import ConfigError


def test_defaults_load():
    config = load_config()
    assert config.face.model == "sface" and config.face.match_threshold is None
    assert config.face.threshold == DEFAULT_MATCH_THRESHOLD == 0.52


def test_the_threshold_follows_the_face_model_unless_set(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[face]\nmodel = "sface+dlib"\n')
    assert load_config(path).face.threshold == 0.49
    path.write_text('[face]\nmodel = "sface+dlib"\nmatch_threshold = 0.55\n')
    assert load_config(path).face.threshold == 0.55
    path.write_text('[face]\nmodel = "arcface"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "face.model" in str(e.value)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[face]\nmatch_treshold = 0.4\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "face.match_treshold" in e.value.message
    assert e.value.details["key"] == "face.match_treshold"


def test_bad_value_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[models]\nthreads = 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "models.threads" in e.value.message


def test_later_file_wins(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[face]\nmatch_threshold = 0.4\nmax_yaw_deg = 20\n")
    b.write_text("[face]\nmatch_threshold = 0.6\n")
    config = load_config(a, b)
    assert config.face.match_threshold == 0.6 and config.face.max_yaw_deg == 20


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[face\n")
    with pytest.raises(ConfigError):
        load_config(bad)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "nope.toml")
