import json
from pathlib import Path

import pytest

from edge.config import DEFAULT_MATCH_THRESHOLD, config_from_dict, config_to_dict, load_config
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


def test_a_config_edited_on_windows_or_unreadable_is_a_config_error(tmp_path):
    """Notepad's UTF-8 starts with a byte order mark: still the same config. A file in another encoding, or a
    folder given as the config, is a ConfigError naming it (both were tracebacks)."""
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[site]\nid = \"ward-7\"\n")
    assert load_config(bom).site.id == "ward-7"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[site]\nid = \"st\xe9\"\n")
    for path, says in ((latin, "UTF-8"), (tmp_path, "cannot read")):
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(path) in caught.value.message and says in caught.value.message


@pytest.mark.parametrize(("toml", "key", "words"), [
    ("unknown = 1\n", "unknown", "unknown field"),
    ("[face]\nmodel = 3\n", "face.model", "Expected `str`"),
    ("[face]\nmax_yaw_deg = 91\n", "face.max_yaw_deg", "<= 90"),
    ("[face]\nsface_match_threshold = 1.5\n", "face.sface_match_threshold", "<= 1"),
    ("[site]\ntimezone = \"Mars/Olympus_Mons\"\n", "site.timezone", "IANA"),
    ("[site.vaccines]\n\"313\\n\" = \"COVID-19\"\n", "site.vaccines", "regex"),  # no record could match it
    ("[site.vaccines]\n\"313\" = \"COVID-19\\n\"\n", "site.vaccines[...]", "regex"),
    ("[device]\nid = \"../gate-7\"\n", "device.id", "matching regex"),
    ("[site]\nwards = \"ward-3\"\n", "site.wards", "Expected `array`"),
    ("[site.face_policy]\nbaby = \"guardian\"\n", "site.face_policy", "baby"),
    ("[models]\ndir = 7\n", "models.dir", "Expected a path"),
    ("[models]\nthreads = true\n", "models.threads", "got `bool`"),
    ("[models]\nthreads = \"2\"\n", "models.threads", "got `str`"),
    ("[camera]\nrotation = 90\n", "camera.rotation", "90"),
    ("[qr]\nbudget_ms = nan\n", "qr.budget_ms", "> 0"),  # TOML has nan; no bound lets it through
])
def test_every_kind_of_bad_value_names_its_key(tmp_path, toml, key, words):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.details["key"] == key
    assert e.value.message.startswith(f"{path}: {key}: ") and words in e.value.message


def test_paths_numbers_and_lists_arrive_typed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[models]\ndir = "/srv/models"\n[face]\nmax_yaw_deg = 20\n[site]\nwards = ["ward-3"]\n'
                    '[camera.controls]\nAeEnable = true\nExposureTime = 10000\nColourGains = [1.5, 2]\n')
    config = load_config(path)
    assert config.models.dir == Path("/srv/models")
    assert config.face.max_yaw_deg == 20.0 and isinstance(config.face.max_yaw_deg, float)
    assert config.site.wards == ("ward-3",)
    assert config.camera.controls == {"AeEnable": True, "ExposureTime": 10000, "ColourGains": (1.5, 2.0)}


def test_the_config_is_immutable_and_survives_a_round_trip_through_plain_values(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[models]\ndir = "/srv/models"\n[site]\nwards = ["ward-3"]\n')
    config = load_config(path)
    with pytest.raises(AttributeError):
        config.face.max_yaw_deg = 10  # type: ignore[misc]
    plain = config_to_dict(config)
    assert plain["models"]["dir"] == "/srv/models"
    assert json.loads(json.dumps(plain)) == json.loads(json.dumps(config_to_dict(config_from_dict(plain))))
    assert config_from_dict(plain) == config
