"""Check that every version pinned in constraints.txt has a wheel a Raspberry Pi can install.

For each ``name==version`` line, read the package's file list from PyPI's simple index (PEP 503) and look for a
wheel of that version that fits
CPython 3.11 on aarch64 Linux: ``py3-none-any``, ``abi3`` or ``cp311`` with a ``manylinux``/``musllinux``
aarch64 platform tag. A pin without one would make pip build from source on the board (hours for grpcio, or
failing), so the board install refuses source builds and this check runs in CI.

    python3 scripts/check_wheels.py [constraints.txt] [--python 311]
"""

from __future__ import annotations

import re
import sys
import urllib.request
from pathlib import Path

#: Only on the development machine (tests, lint, stub generation): never installed on a board.
DEV_ONLY = {"pytest", "iniconfig", "pluggy", "pygments", "hypothesis", "sortedcontainers", "ruff", "mypy",
            "mypy-extensions", "pathspec", "librt", "ast-serialize", "grpcio-tools", "qrcode", "psycopg",
            "psycopg-binary",
            # picamera2 and its imports, for the adapter's tests: a Pi uses apt's python3-picamera2 instead.
            "picamera2", "python-prctl", "pidng", "piexif", "pillow", "simplejpeg", "videodev2"}


def fits(filename: str, python: str) -> bool:
    if not filename.endswith(".whl"):
        return False
    _, _, rest = filename[:-4].partition("-")
    tags = rest.split("-")[-3:]
    py, abi, platform = tags
    if platform == "any":
        return True
    if "aarch64" not in platform or not platform.startswith(("manylinux", "musllinux", "linux")):
        return False
    return abi == "abi3" or f"cp{python}" in py.split(".")


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    python = argv[argv.index("--python") + 1] if "--python" in argv else "311"
    path = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "constraints.txt"
    missing = []
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if not match:
            continue
        name, version = match.groups()
        if re.sub(r"[_.]", "-", name.lower()) in DEV_ONLY:
            continue
        project = re.sub(r"[-_.]+", "-", name).lower()
        with urllib.request.urlopen(f"https://pypi.org/simple/{project}/", timeout=60) as reply:
            page = reply.read().decode()
        prefix = re.sub(r"[-_.]+", "_", name).lower() + "-" + version + "-"
        files = [f for f in re.findall(r'>([^<>]+\.whl)</a>', page) if f.lower().startswith(prefix)]
        if not any(fits(f, python) for f in files):
            missing.append(f"{name}=={version}")
        print(f"{'ok ' if f'{name}=={version}' not in missing else 'NO '} {name}=={version}", file=sys.stderr)
    if missing:
        print(f"no aarch64 wheel for cp{python}: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
