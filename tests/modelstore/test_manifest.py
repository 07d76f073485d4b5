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
