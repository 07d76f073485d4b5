import shutil

import pytest

from edge.errors import ModelError
from edge.modelstore import default_model_dir, load_manifest, resolve_model


def test_manifest_lists_pinned_models():
    manifest = load_manifest()
    assert set(manifest.models) == {"yunet", "sface", "dlib_resnet"}
    for spec in manifest.models.values():
        assert len(spec.sha256) == 64 and len(spec.source_sha256) == 64
        assert spec.license


def test_missing_model_says_how_to_fetch(tmp_path):
    with pytest.raises(ModelError) as e:
        resolve_model("yunet", tmp_path)
    assert e.value.code == "model_missing"
    assert "edge models fetch" in e.value.message


def test_altered_model_is_refused(tmp_path):
    spec = load_manifest().spec("yunet")
    source = default_model_dir() / spec.file
    if not source.is_file():
        pytest.skip("models not fetched")
    shutil.copy(source, tmp_path / spec.file)
    with (tmp_path / spec.file).open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError) as e:
        resolve_model("yunet", tmp_path)
    assert e.value.code == "model_corrupt"
    assert "edge models fetch" in e.value.message


def test_unknown_model_name():
    with pytest.raises(ModelError):
        load_manifest().spec("nope")


def _unreachable_manifest(tmp_path, optional: bool):
    """A manifest with one model whose npm registry cannot be reached (a closed local port)."""
    path = tmp_path / "manifest.toml"
    path.write_text(f"""
[source.npm]
url = "http://127.0.0.1:9/face-api-1.7.15.tgz"
archive = "face-api-1.7.15.tgz"
sha256 = "{'0' * 64}"

[models.second]
file = "second.onnx"
task = "t"
license = "l"
source = "npm"
member = "package/model/m.json"
source_sha256 = "{'0' * 64}"
transform = "faceapi_resnet_to_onnx"
sha256 = "{'0' * 64}"
optional = {str(optional).lower()}
""")
    return load_manifest(path)


def test_an_optional_model_that_cannot_be_fetched_is_left_out_and_a_required_one_fails(tmp_path, monkeypatch):
    from edge.modelstore.fetch import fetch_models

    monkeypatch.delenv("EDGE_WHEEL_CACHE", raising=False)
    assert fetch_models(tmp_path / "models", _unreachable_manifest(tmp_path, optional=True)) == {}
    with pytest.raises(ModelError) as e:
        fetch_models(tmp_path / "models", _unreachable_manifest(tmp_path, optional=False))
    assert "127.0.0.1:9" in e.value.message


def test_models_check_reports_a_missing_optional_model_without_failing(tmp_path, monkeypatch, capsys):
    import json

    from edge.cli.main import main

    source = default_model_dir()
    manifest = load_manifest()
    if not all((source / spec.file).is_file() for spec in manifest.models.values() if not spec.optional):
        pytest.skip("models not fetched")
    for spec in manifest.models.values():
        if not spec.optional:
            (tmp_path / spec.file).symlink_to(source / spec.file)
    assert main(["models", "check", "--dir", str(tmp_path)]) == 0
    lines = {line["model"]: line for line in map(json.loads, capsys.readouterr().out.splitlines())}
    assert lines["dlib_resnet"]["ok"] is False and lines["dlib_resnet"]["error"] == "model_missing"
    assert lines["sface"]["ok"] is True and lines["yunet"]["ok"] is True


def test_a_machine_table_replaces_only_the_fields_it_names(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text(f"""
[models.m]
file = "m.onnx"
task = "t"
license = "l"
source = "s"
member = "m"
source_sha256 = "{'1' * 64}"
transform = "plain"
sha256 = "{'2' * 64}"

[models.m.machine.x86_64]
file = "m_x86.onnx"
transform = "blocked"
sha256 = "{'3' * 64}"
""")
    x86, arm = load_manifest(path, machine="x86_64").spec("m"), load_manifest(path, machine="aarch64").spec("m")
    assert (x86.file, x86.transform, x86.sha256) == ("m_x86.onnx", "blocked", "3" * 64)
    assert (arm.file, arm.transform, arm.sha256) == ("m.onnx", "plain", "2" * 64)
    assert x86.source_sha256 == arm.source_sha256 == "1" * 64


def test_the_shipped_manifest_gives_x86_64_its_own_sface_and_the_pi_the_portable_one():
    x86, arm = load_manifest(machine="x86_64").spec("sface"), load_manifest(machine="aarch64").spec("sface")
    assert x86.file != arm.file and x86.sha256 != arm.sha256
    assert x86.transform.endswith("prelu_as_depthwise") and arm.transform.endswith("prelu_as_relu")
    assert load_manifest(machine="aarch64").spec("yunet") == load_manifest(machine="x86_64").spec("yunet")


@pytest.mark.parametrize("extra, says", [('\n[models.m.machine.x86_64]\nfil = "typo.onnx"', "fil"),
                                         ('machine = "x86_64"', "one table per machine")])
def test_a_bad_machine_table_is_a_typed_error_that_names_the_model(tmp_path, extra, says):
    path = tmp_path / "manifest.toml"
    fields = "".join(f'{k} = "{v}"\n' for k, v in (("file", "m.onnx"), ("task", "t"), ("license", "l"),
                                                    ("source", "s"), ("member", "m"), ("source_sha256", "1"),
                                                    ("transform", "plain"), ("sha256", "2")))
    path.write_text(f"[models.m]\n{fields}{extra}\n")
    with pytest.raises(ModelError) as e:
        load_manifest(path, machine="x86_64")
    assert e.value.code == "model_corrupt" and "models.m" in e.value.message and says in e.value.message
