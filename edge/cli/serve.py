"""``edge serve --config FILE``: run the daemon until SIGTERM/SIGINT, then shut down gracefully.

Start-up refusals (a port in use, a folder that cannot be written, a key that cannot be read, a damaged
database) are typed errors: one line on stderr naming what and how to fix it, exit code 5, no traceback.
"""

from __future__ import annotations

import argparse
import logging

from edge.cli.common import EXIT_OK, config_from_args
from edge.cli.signals import StopSignals
from edge.errors import ConfigError, StorageError

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gRPC daemon")
    p.add_argument("--config", required=True, action="append",
                   help="TOML config; repeat to merge profiles in order (board, then site)")
    p.add_argument("--port-file", help="write the bound port here once SERVING (for port 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.server.daemon import EdgeDaemon

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    config = config_from_args(args)
    try:
        daemon = EdgeDaemon(config)
    except PermissionError as exc:
        raise StorageError(f"cannot write {exc.filename}: permission denied (the service user needs "
                           f"{config.device.data_dir} writable)", code="storage_unwritable") from exc
    except OSError as exc:
        raise ConfigError(f"{exc.filename or config.device.data_dir}: {exc.strerror}", key="device.data_dir") from exc
    with StopSignals() as signals:  # a second SIGTERM during the graceful stop is absorbed, not fatal
        port = daemon.start()
        if args.port_file:
            with open(args.port_file, "w") as handle:
                handle.write(str(port))
        received = signals.wait()
        log.warning("shutting down", extra={"fields": {"grace_s": config.server.grace_s,
                                                       "signal": received.name}})
        daemon.stop()
    log.warning("stopped")
    return EXIT_OK
