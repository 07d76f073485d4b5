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
