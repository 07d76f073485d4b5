"""Entry point of the ``edge`` command (also ``python -m edge``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from edge import __version__
from edge.cli.common import EXIT_ERROR, EXIT_USAGE, exit_code_for, fail
from edge.errors import EdgeError
from edge.log import configure_logging

#: Each command's module, imported only when that command runs (or for the full help): `edge match` must not
#: pay for Numba, gRPC or the liveness code at start-up.
COMMANDS = {"match": "match", "qr": "qr", "card": "card", "liveness": "liveness", "eval": "liveness",
            "token": "token", "serve": "serve", "client": "client", "registry": "registry", "ca": "registry",
            "audit": "registry", "demo": "demo", "calibrate": "calibrate", "models": "models"}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("EDGE_LOG_LEVEL", "warning"),
                        choices=["debug", "info", "warning", "error"], help="stderr log level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    chosen = COMMANDS.get(words[0]) if words else None
    modules = [chosen] if chosen else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(f"edge.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"edge {__version__}")
        return 0
    parser = build_parser(argv)
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
    except OSError as exc:  # a path given that cannot be used (a file where a folder goes, no permission, disk full)
        if args.command == "serve" or getattr(args, "registry_command", None) == "serve":
            raise  # a daemon's trace goes to the journal, and exit 1 lets systemd restart it (5 would not)
        logging.getLogger("edge.cli").debug("operating system error", exc_info=True)  # the trace, for --log-level debug
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
