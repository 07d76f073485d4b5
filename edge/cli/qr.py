"""``edge qr --json IMAGE...``: decode QR codes from image files (DESIGN.md contract)."""

from __future__ import annotations

import argparse
import base64

from edge.cli.common import EXIT_OK, EXIT_UNREADABLE, config_from_args, emit
from edge.errors import ImageError
from edge.imageio import load_image
from edge.qr.stage import QRStage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("qr", help="decode QR codes in images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    p.add_argument("--config", help="TOML config file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    stage = QRStage(budget_ms=config.qr.budget_ms)
    code = EXIT_OK
    for path in args.images:
        result: dict = {"path": path, "codes": [], "error": None}
        try:
            image = load_image(path, max_pixels=config.image.max_pixels)
            result["codes"] = [{"text": c.text, "bytes_b64": base64.b64encode(c.data).decode("ascii")}
                               for c in stage.decode(image)]
        except ImageError as exc:
            result["error"] = exc.code
            code = EXIT_UNREADABLE if len(args.images) == 1 else code
        if args.json:
            emit(result)
        elif result["error"]:
            print(f"{path}: ERROR {result['error']}")
        else:
            print(f"{path}: {len(result['codes'])} code(s)")
            for c in result["codes"]:
                print(f"  {c['text']}")
    return code
