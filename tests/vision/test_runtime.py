"""The onnxruntime backend's start-up options keep the embedders' results."""

import cv2
import numpy as np
import pytest

from edge.errors import ModelError
from edge.modelstore import resolve_model
from edge.vision.align import align_face
from edge.vision.embedder import FaceEmbedder
from edge.vision.resnet_embedder import ResNetEmbedder
from edge.vision.runtime import OnnxBackend


@pytest.mark.parametrize("model", ["sface", "dlib_resnet"])
def test_skipping_weight_prepacking_gives_the_same_embedding(model, testdata, face_stage):
    """The embedders are built with prepack=False for a faster start; the vectors must not move."""
    try:
        path = resolve_model(model)
    except ModelError as exc:
        pytest.skip(f"{model} not fetched: {exc.message}")
    image = cv2.imread(str(testdata / "faces" / "people" / "obama" / "obama.jpg"))
    face = face_stage.detector.detect(image)[0]
    vectors = []
    for prepack in (True, False):
        backend = OnnxBackend(path, prepack=prepack)
        if model == "sface":
            vectors.append(FaceEmbedder(backend).embed(align_face(image, face.landmarks)))
        else:
            vectors.append(ResNetEmbedder(backend).embed(image, face.landmarks))
    assert np.abs(vectors[0]).max() > 0.01
    np.testing.assert_allclose(vectors[0], vectors[1], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_each_machines_sface_file_is_built_to_its_pin_and_embeds_alike(tmp_path, testdata, face_stage):
    """x86-64 runs its own SFace graph (each PRelu as depthwise convolutions, models/manifest.toml); the
    Pi's file would otherwise never be loaded here. Both are built from the wheel as `edge models fetch`
    builds them (a digest that no longer matches its pin fails the fetch), and both must give one vector."""
    from edge.modelstore import ModelManifest, load_manifest
    from edge.modelstore.fetch import fetch_models

    image = cv2.imread(str(testdata / "faces" / "people" / "obama" / "obama.jpg"))
    aligned = align_face(image, face_stage.detector.detect(image)[0].landmarks)
    vectors = {}
    for machine in ("x86_64", "aarch64"):
        manifest = load_manifest(machine=machine)
        only_sface = ModelManifest(path=manifest.path, sources=manifest.sources,
                                   models={"sface": manifest.spec("sface")})
        path = fetch_models(tmp_path / machine, only_sface)["sface"]
        vectors[machine] = FaceEmbedder(OnnxBackend(path, prepack=False)).embed(aligned)
    assert np.abs(vectors["x86_64"]).max() > 0.01
    np.testing.assert_allclose(vectors["x86_64"], vectors["aarch64"], rtol=1e-4, atol=1e-5)
