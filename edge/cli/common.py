"""Helpers shared by the subcommands: exit codes, JSON lines, config loading."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError, EdgeError, ImageError, ModelError, NoFaceError, SecurityError, StorageError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_FACE = 3
EXIT_UNREADABLE = 4
EXIT_SETUP = 5
EXIT_DENIED = 6


def exit_code_for(error: EdgeError) -> int:
    if isinstance(error, NoFaceError):
        return EXIT_NO_FACE
    if isinstance(error, ImageError):
        return EXIT_UNREADABLE
    if isinstance(error, ConfigError | ModelError | StorageError):
        return EXIT_SETUP
    if isinstance(error, SecurityError) and error.code.startswith("key_"):
        return EXIT_SETUP
    return EXIT_ERROR


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON object as one line on stdout and flush (consumers read line by line)."""
    sys.stdout.write(json.dumps(obj, separators=(", ", ": ")) + "\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    sys.stderr.write(f"edge: {message}\n")


def existing_file(value: str) -> Path | None:
    """``value`` as a path if it names an existing file; None for text that is not a path (even text too
    long to be a file name, which makes ``Path.is_file`` raise)."""
    try:
        path = Path(value)
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def config_from_args(args: Any) -> EdgeConfig:
    """The config named by ``--config`` (one path, or several merged in order: board, then site)."""
    given = getattr(args, "config", None)
    paths = given if isinstance(given, list) else [given] if given else []
    return load_config(*paths)


def hex_bytes(size: int) -> Callable[[str], bytes]:
    """An argparse type: exactly ``size`` bytes written as hex (a key, a digest, a pseudonym)."""
    def parse(text: str) -> bytes:
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{2 * size} hex characters expected, not {text!r}") from None
        if len(value) != size:
            raise argparse.ArgumentTypeError(f"{2 * size} hex characters ({size} bytes) expected, not "
                                             f"{len(value)} bytes")
        return value
    return parse


def finite_number(text: str, kind: type[int] | type[float] = float) -> int | float:
    """An argparse type's first step: ``text`` as a finite ``kind`` (int or float), or ArgumentTypeError."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (a count of frames, presentations, seconds)."""
    value = int(finite_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (a seed, a time stamp where 0 means none)."""
    value = int(finite_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (a timeout in seconds)."""
    value = float(finite_number(text, float))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def score_value(text: str) -> float:
    """An argparse type: a match score threshold, finite and in [-1, 1] (cosine-like scores)."""
    value = float(finite_number(text, float))
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a score threshold is in [-1, 1], not {text}")
    return value
