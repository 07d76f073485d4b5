"""``edge match``: 1:1 face comparison of image pairs (DESIGN.md command-line contract).

Models are loaded once per invocation; each distinct image is embedded once even if it appears in many
pairs, ``models.threads`` images at a time. A pair that fails (no face, unreadable image) yields its own
line with an error code and never stops the batch.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.assembly import batch_workers, build_face_stage
from edge.cli.common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    config_from_args,
    emit,
    exit_code_for,
    fail,
    score_value,
)
from edge.errors import EdgeError, ImageError
from edge.vision.batch import embed_concurrently
from edge.vision.face_stage import FaceStage
from edge.vision.matcher import FaceMatcher
from edge.vision.types import FaceEmbedding

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("match", help="compare the faces in two images (1:1)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="two images: A B")
    p.add_argument("--pairs", metavar="FILE.csv", help="CSV with header a,b: one comparison per row")
    p.add_argument("--json", action="store_true", help="one JSON object per pair on stdout")
    p.add_argument("--threshold", type=score_value,
                   help="match threshold in [-1, 1] (default: from config, else the face model's)")
    p.add_argument("--config", help="TOML config file")
    p.set_defaults(func=run)


@dataclass
class PairMatcher:
    """Embeds each distinct image once, ``workers`` at a time (edge/vision/batch.py), and compares the pairs
    with one matcher, in the order given."""

    stage: FaceStage
    matcher: FaceMatcher
    max_pixels: int
    workers: int = 1

    def _embed(self, path: str) -> FaceEmbedding:
        return self.stage.embed_file(path, max_pixels=self.max_pixels)

    def compare_all(self, pairs: list[tuple[str, str]]) -> Iterator[tuple[dict[str, Any], EdgeError | None]]:
        """One contract line per pair and the error behind it if any; each line as soon as both its images
        are embedded, so a long pairs file streams."""
        known: dict[str, FaceEmbedding | EdgeError] = {}
        order = dict.fromkeys(path for pair in pairs for path in pair)
        embeddings = embed_concurrently(self._embed, order, workers=self.workers)
        for a, b in pairs:
            while a not in known or b not in known:
                path, embedding = next(embeddings)
                if isinstance(embedding, FaceEmbedding) and embedding.faces_found > 1:
                    log.warning("several faces; chose the largest", extra={"fields": {
                        "path": path, "faces": embedding.faces_found, "rule": "largest_box"}})
                known[path] = embedding
            yield self._compare(a, b, known[a], known[b])

    def _compare(self, a: str, b: str, first: FaceEmbedding | EdgeError,
                 second: FaceEmbedding | EdgeError) -> tuple[dict[str, Any], EdgeError | None]:
        result: dict[str, Any] = {"a": a, "b": b, "similarity": None, "match": False,
                                  "threshold": self.matcher.threshold, "error": None}
        if isinstance(first, EdgeError):
            return self._failed(result, first)
        if isinstance(second, EdgeError):
            return self._failed(result, second)
        try:
            outcome = self.matcher.match(first.vector, second.vector)
        except EdgeError as exc:
            return self._failed(result, exc)
        result["similarity"] = round(outcome.similarity, 6)
        result["match"] = outcome.match
        return result, None

    @staticmethod
    def _failed(result: dict[str, Any], error: EdgeError) -> tuple[dict[str, Any], EdgeError]:
        result["error"] = error.code
        return result, error


def read_pairs(path: str) -> list[tuple[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets write a BOM
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = reader.fieldnames or []
    except FileNotFoundError:
        raise ImageError(f"{path}: no such pairs file", code="pairs_unreadable") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImageError(f"{path}: not a readable CSV ({exc})", code="pairs_unreadable") from exc
    if not {"a", "b"} <= set(fields):
        raise ValueError(f"{path}: header must have columns a,b (found {', '.join(fields) or 'no header'})")
    base = Path(path).parent
    pairs = []
    for row in rows:
        a, b = (row.get("a") or "").strip(), (row.get("b") or "").strip()
        pairs.append((str(base / a) if a and not Path(a).is_absolute() and not Path(a).exists() else a,
                      str(base / b) if b and not Path(b).is_absolute() and not Path(b).exists() else b))
    return pairs


def _human(result: dict[str, Any], error: EdgeError | None) -> str:
    if error is not None:
        return f"ERROR {error.code}: {error.message}"
    verdict = "MATCH" if result["match"] else "NO MATCH"
    return (f"{verdict}  similarity {result['similarity']:.3f} (threshold {result['threshold']:.3f})  "
            f"{result['a']}  {result['b']}")


def run(args: argparse.Namespace) -> int:
    if bool(args.pairs) == bool(args.images) or (args.images and len(args.images) != 2):
        fail("give exactly two images, or --pairs FILE.csv")
        return EXIT_USAGE
    config = config_from_args(args)
    try:
        pairs = read_pairs(args.pairs) if args.pairs else [(args.images[0], args.images[1])]
    except ValueError as exc:
        fail(str(exc))
        return EXIT_USAGE
    except ImageError as exc:
        fail(exc.message)
        return EXIT_UNREADABLE
    threshold = args.threshold if args.threshold is not None else config.face.threshold
    stage = build_face_stage(config, batch=True)
    matcher = PairMatcher(stage, FaceMatcher(stage.model, threshold), config.image.max_pixels,
                          workers=batch_workers(config))
    code = EXIT_OK
    for result, error in matcher.compare_all(pairs):
        if args.json:
            emit(result)
        else:
            print(_human(result, error))
        if error is not None and not args.pairs:
            code = exit_code_for(error)
    return code
