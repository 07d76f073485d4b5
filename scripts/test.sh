#!/usr/bin/env bash
# Run the whole test suite (sets up first if needed). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The registry's PostgreSQL tests start their own server from Debian's binaries; install them if absent.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "${EDGE_SKIP_APT:-0}" != 1 ] \
        && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "test: installing postgresql (server binaries for the registry tests)" >&2
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
