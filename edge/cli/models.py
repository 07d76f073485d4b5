"""``edge models fetch|check``: install-time model fetch and integrity check. One line per model; an optional
model (needed only by a non-default configuration) that is missing is reported with ``"ok": false`` and does
not fail the command."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge.cli.common import EXIT_OK, emit
from edge.errors import ModelError
from edge.modelstore import default_model_dir, load_manifest, resolve_model

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="fetch and check the face models (install time, never at run time)")
    p.add_argument("action", choices=["fetch", "check"])
    p.add_argument("--dir", type=Path, help="model folder (default $EDGE_MODEL_DIR or ~/.local/share/edge/models)")
    p.add_argument("--force", action="store_true", help="fetch again even when the files verify")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model_dir = args.dir or default_model_dir()
    if args.action == "fetch":
        from edge.modelstore.fetch import fetch_models

        fetch_models(model_dir, force=args.force)
    manifest = load_manifest()
    for name, spec in manifest.models.items():
        try:
            path = resolve_model(name, model_dir, manifest)
        except ModelError as exc:
            if not spec.optional:
                raise
            emit({"model": name, "path": str(model_dir / spec.file), "sha256": spec.sha256, "license": spec.license,
                  "ok": False, "optional": True, "error": exc.code})
            continue
        emit({"model": name, "path": str(path), "sha256": spec.sha256, "license": spec.license, "ok": True,
              "optional": spec.optional})
    return EXIT_OK
