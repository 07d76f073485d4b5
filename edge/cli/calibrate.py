"""``edge calibrate DIR``: score distributions and FMR/FNMR at thresholds from a labelled folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge.assembly import batch_workers, build_face_stage
from edge.cli.common import EXIT_OK, EXIT_USAGE, config_from_args, emit, fail, finite_number, score_value
from edge.cli.progress import Progress
from edge.errors import EdgeError
from edge.vision.batch import embed_concurrently
from edge.vision.calibration import error_rates, pair_scores, summary, threshold_for_fmr

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def target_fmr(text: str) -> float:
    """A false-match rate to pick a threshold for: a finite fraction in [0, 1)."""
    value = float(finite_number(text))
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a false-match rate is a fraction in [0, 1), not {text}")
    return value


def score_thresholds(text: str) -> list[float]:
    """Comma-separated score thresholds, each a finite number in [-1, 1] (cosine-like scores)."""
    return [score_value(item.strip()) for item in text.split(",")]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="report genuine/impostor score distributions and FMR/FNMR")
    p.add_argument("folder", type=Path, help="one sub-folder of images per person")
    p.add_argument("--target-fmr", type=target_fmr, default=0.001,
                   help="false-match rate to pick a threshold for, in [0, 1)")
    p.add_argument("--thresholds", type=score_thresholds, default="0.30,0.363,0.40,0.45,0.50,0.52,0.55,0.60",
                   help="comma-separated score thresholds to tabulate, each in [-1, 1]")
    p.add_argument("--config", help="TOML config file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        fail(f"{args.folder} is not a folder")
        return EXIT_USAGE
    images = [(person, image) for person in sorted(p for p in args.folder.iterdir() if p.is_dir())
              for image in sorted(person.iterdir()) if image.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        fail(f"{args.folder} holds no images: expected one sub-folder of images per person "
             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return EXIT_USAGE
    config = config_from_args(args)
    stage = build_face_stage(config, batch=True)
    vectors, labels, skipped = {}, {}, []
    progress = Progress("embedding images", len(images))
    embeddings = embed_concurrently(lambda item: stage.embed_file(item[1], max_pixels=config.image.max_pixels), images,
                                    workers=batch_workers(config))
    for (person, image), embedding in embeddings:
        progress.step()
        if isinstance(embedding, EdgeError):
            skipped.append({"path": str(image), "error": embedding.code})
        else:
            vectors[str(image)] = embedding.vector
            labels[str(image)] = person.name
    progress.finish()
    scores = pair_scores(vectors, labels, stage.model)
    table = []
    for t in args.thresholds:
        fmr, fnmr = error_rates(scores, t)
        table.append({"threshold": t, "fmr": fmr, "fnmr": fnmr})
    result = {"model": stage.model.name, "images": len(vectors), "people": len(set(labels.values())),
              "skipped": skipped, "genuine": summary(scores.genuine), "impostor": summary(scores.impostor),
              "table": table}
    if scores.impostor.size:
        chosen = threshold_for_fmr(scores.impostor, args.target_fmr)
        fmr, fnmr = error_rates(scores, chosen)
        result["target"] = {"fmr": args.target_fmr, "threshold": chosen, "fmr_at": fmr, "fnmr_at": fnmr,
                            "smallest_demonstrable_fmr": 3.0 / scores.impostor.size}
    emit(result)
    return EXIT_OK
