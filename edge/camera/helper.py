"""The capture helper: one process that owns the camera and puts frames into shared memory.

On Raspberry Pi OS, picamera2 and its libcamera bindings are apt packages built for the system Python and
its numpy 1.24; the daemon's venv has its own numpy. So the daemon does not import picamera2: it starts this
module on the system Python (``camera.helper_python = "/usr/bin/python3"``), which imports only the stdlib,
numpy, picamera2 and edge.camera.{base,picam,ring}. Per frame the helper copies the pixels into a ring slot
and writes one line ``<seq> <timestamp>`` to stdout; the daemon (edge.camera.remote) reads the line, copies
the slot out, and checks it. A camera failure ends the helper with a message on stderr and exit code 3; the
daemon's camera owner starts a new helper with back-off.

    python3 -m edge.camera.helper --ring NAME --source picamera2 [--width 640 --height 480 --fps 30 ...]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

EXIT_CAMERA = 3


def open_camera(args: argparse.Namespace) -> Any:
    mounting = {"width": args.width, "height": args.height, "fps": args.fps, "rotation": args.rotation,
                "hflip": args.hflip, "vflip": args.vflip}
    if args.source == "picamera2":
        from edge.camera.picam import PiCamera2Source

        return PiCamera2Source(controls=json.loads(args.controls), frame_timeout_s=args.frame_timeout_s,
                               **mounting)
    if args.source.startswith("v4l2:"):  # a USB camera can live in a helper too (needs OpenCV there)
        from edge.camera.sources import OpenCVSource

        target = args.source[5:]
        return OpenCVSource(int(target) if target.isdigit() else target, **mounting)
    raise SystemExit(f"unknown source {args.source!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge.camera.helper")
    parser.add_argument("--ring", required=True, help="shared memory name (made by the daemon)")
    parser.add_argument("--source", required=True, help="picamera2 or v4l2:N|PATH")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--rotation", type=int, default=0)
    parser.add_argument("--hflip", action="store_true")
    parser.add_argument("--vflip", action="store_true")
    parser.add_argument("--controls", default="{}", help="libcamera controls as JSON")
    parser.add_argument("--frame-timeout-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    from edge.camera.ring import FrameRing
    from edge.errors import EdgeError

    ring = FrameRing.attach(args.ring)
    try:
        camera = open_camera(args)
    except EdgeError as exc:
        sys.stderr.write(f"{exc.code}: {exc.message}\n")
        ring.close()
        return EXIT_CAMERA
    out = sys.stdout
    try:
        for seq, (timestamp, frame) in enumerate(camera.frames(), start=1):
            ring.write(seq, timestamp, frame)
            out.write(f"{seq} {timestamp!r}\n")
            out.flush()
    except EdgeError as exc:
        sys.stderr.write(f"{exc.code}: {exc.message}\n")
        return EXIT_CAMERA
    except BrokenPipeError:  # the daemon went away
        return 0
    finally:
        camera.close()
        ring.close()
    sys.stderr.write("camera_failed: the camera stream ended\n")
    return EXIT_CAMERA


if __name__ == "__main__":
    sys.exit(main())
