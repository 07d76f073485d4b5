"""Entry point of the ``edge`` command (also ``python -m edge``)."""

from __future__ import annotations

import argparse
import os
import sys

from edge import __version__
from edge.cli import calibrate, card, client, demo, liveness, match, models, qr, registry, serve, token
from edge.cli.common import EXIT_USAGE, exit_code_for, fail
from edge.errors import EdgeError
from edge.log import configure_logging

SUBCOMMANDS = [match, qr, card, liveness, token, serve, client, registry, demo, calibrate, models]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("EDGE_LOG_LEVEL", "warning"),
                        choices=["debug", "info", "warning", "error"], help="stderr log level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except EdgeError as exc:
        fail(f"{exc.code}: {exc.message}")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
