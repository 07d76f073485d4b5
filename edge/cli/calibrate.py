"""``edge calibrate DIR``: score distributions and FMR/FNMR at thresholds from a labelled folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge.assembly import batch_workers, build_face_stage
from edge.cli.common import EXIT_OK, EXIT_USAGE, config_from_args, emit, fail
from edge.cli.progress import Progress
from edge.errors import EdgeError
from edge.vision.batch import embed_concurrently
from edge.vision.calibration import error_rates, pair_scores, summary, threshold_for_fmr

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="report genuine/impostor score distributions and FMR/FNMR")
    p.add_argument("folder", type=Path, help="one sub-folder of images per person")
    p.add_argument("--target-fmr", type=float, default=0.001, help="false-match rate to pick a threshold for")
    p.add_argument("--thresholds", default="0.30,0.363,0.40,0.45,0.50,0.52,0.55,0.60",
                   help="comma-separated score thresholds to tabulate")
    p.add_argument("--config", help="TOML config file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        fail(f"{args.folder} is not a folder")
        return EXIT_USAGE
    config = config_from_args(args)
    stage = build_face_stage(config, batch=True)
    vectors, labels, skipped = {}, {}, []
    images = [(person, image) for person in sorted(p for p in args.folder.iterdir() if p.is_dir())
              for image in sorted(person.iterdir()) if image.suffix.lower() in IMAGE_SUFFIXES]
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
    for t in (float(x) for x in args.thresholds.split(",")):
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
