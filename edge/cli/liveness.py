"""``edge liveness --json SOURCE`` and ``edge eval liveness DIR`` (plus the generated evaluation set)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.assembly import build_face_stage, liveness_thresholds
from edge.camera.sources import ReplaySource
from edge.cli.common import (
    EXIT_DENIED,
    EXIT_OK,
    EXIT_USAGE,
    config_from_args,
    emit,
    fail,
    non_negative_int,
    positive_int,
)
from edge.cli.progress import Progress
from edge.errors import CameraError
from edge.liveness.checker import LivenessChecker, with_and_without_pad
from edge.liveness.evaluation import Outcome, metrics
from edge.liveness.pad import pad_model_dir
from edge.liveness.temporal import Challenge
from edge.vision.detector import FaceDetector

log = logging.getLogger(__name__)

#: In a challenge presentation's folder: the session nonce (hex) the presentation answers.
NONCE_FILE = "nonce.hex"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("liveness", help="liveness decision on a video file or a folder of frames")
    p.add_argument("source")
    p.add_argument("--json", action="store_true")
    p.add_argument("--challenge", action="store_true",
                   help="issue a nonce-bound challenge, print the prompt the gate would show, and require it")
    p.add_argument("--nonce", help="session nonce in hex (default random) for --challenge")
    p.add_argument("--max-frames", type=positive_int, default=60)
    p.add_argument("--no-pad", action="store_true", help="ignore provisioned PAD models")
    p.add_argument("--config", help="TOML config file")
    p.set_defaults(func=run)

    e = sub.add_parser("eval", help="evaluation reports")
    cmds = e.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    lv = cmds.add_parser("liveness", help="ISO/IEC 30107-3 metrics over DIR/live, DIR/attack_*")
    lv.add_argument("dir", type=Path)
    lv.add_argument("--challenge", action="store_true",
                    help="also evaluate DIR/challenge, each presentation against its own nonce.hex")
    lv.add_argument("--no-pad", action="store_true")
    lv.add_argument("--config", help="TOML config file")
    lv.set_defaults(func=run_eval)
    gen = cmds.add_parser("liveness-set", help="write a generated evaluation set (live windows + attacks)")
    gen.add_argument("out", type=Path)
    gen.add_argument("--data", type=Path, default=Path(os.environ.get("EDGE_TESTDATA", "../shared/data")))
    gen.add_argument("--per-type", type=positive_int, default=12)
    gen.add_argument("--seed", type=non_negative_int, default=0)
    gen.add_argument("--challenge-set", action="store_true",
                     help="also write DIR/challenge: real turns from video/live, replayed turns and photos "
                          "turned as asked, each with the nonce it answers (for eval liveness --challenge)")
    gen.set_defaults(func=run_generate)


def eval_checkers(args: argparse.Namespace, require_challenge: bool) -> dict[str, LivenessChecker]:
    """Without the PAD models (the default install) and, when provisioned and not --no-pad, with them: the
    config's ``liveness.pad_models``, else $EDGE_PAD_MODELS or ../shared/models. The rules are the config's
    (``--config``: a site's), as its gates apply them; until 2026-12-07 they were the defaults whatever the
    config said."""
    config = config_from_args(args)
    faces = build_face_stage(config)
    pad_folder = None if args.no_pad else (config.liveness.pad_models or pad_model_dir())
    return with_and_without_pad(faces.detector, liveness_thresholds(config, faces, require_challenge), pad_folder)


def make_checker(args: argparse.Namespace, require_challenge: bool = False) -> LivenessChecker:
    """The checker the gate would run: with the PAD models when they are provisioned (and not --no-pad)."""
    checkers = eval_checkers(args, require_challenge)
    return checkers.get("with_pad", checkers["without_pad"])


def parse_nonce(text: str) -> bytes | None:
    """A session nonce from hex, or None unless it is hex of at least 16 bytes."""
    try:
        nonce = bytes.fromhex(text.strip())
    except ValueError:
        return None
    return nonce if len(nonce) >= 16 else None


def run(args: argparse.Namespace) -> int:
    challenge = None
    if args.nonce and not args.challenge:
        fail("--nonce is the challenge's session nonce: give --challenge with it")
        return EXIT_USAGE
    if args.challenge:
        nonce = parse_nonce(args.nonce) if args.nonce else os.urandom(16)
        if nonce is None:
            fail(f"--nonce must be at least 16 bytes in hex, not {args.nonce!r}")
            return EXIT_USAGE
        challenge = Challenge.from_nonce(nonce)
        fail(f"prompt at {challenge.prompt_at_s:.2f} s: {challenge.prompt}")
    checker = make_checker(args, require_challenge=args.challenge)
    with ReplaySource(args.source, max_frames=args.max_frames) as source:
        result = checker.check(source.frames(), challenge=challenge)
    out = result.to_json(args.source)
    if challenge is not None:
        out["prompts"] = [challenge.prompt]
    if args.json:
        emit(out)
    else:
        print(("LIVE" if result.live else "NOT LIVE") + "  " + ", ".join(result.reasons))
    return EXIT_OK if result.live else EXIT_DENIED


def _presentations(folder: Path) -> list[tuple[str, Path]]:
    return [(label_dir.name, item) for label_dir in sorted(p for p in folder.iterdir() if p.is_dir())
            if label_dir.name == "live" or label_dir.name.startswith("attack_")
            for item in sorted(label_dir.iterdir()) if item.is_dir() or item.is_file()]


def _read_nonce(item: Path) -> bytes | None:
    try:
        return parse_nonce((item / NONCE_FILE).read_text())
    except (OSError, UnicodeDecodeError):  # missing, or bytes that are no text: no nonce to judge against
        return None


def run_eval(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        fail(f"{args.dir} is not a folder")
        return EXIT_USAGE
    modes = [("passive", args.dir, False)]
    if args.challenge:
        if not (args.dir / "challenge").is_dir():
            fail(f"{args.dir / 'challenge'} is missing: challenge presentations must be made for their nonce "
                 "(edge eval liveness-set writes them)")
            return EXIT_USAGE
        modes.append(("challenge", args.dir / "challenge", True))
    plans = []
    for mode, folder, require in modes:  # every nonce is checked before any presentation is judged
        items = _presentations(folder)
        nonces = [_read_nonce(item) if require else None for _, item in items]
        bad = next((item for (_, item), nonce in zip(items, nonces, strict=True) if require and nonce is None), None)
        if bad is not None:
            fail(f"{bad} has no readable {NONCE_FILE} (16+ bytes in hex): a challenge presentation answers one "
                 "nonce")
            return EXIT_USAGE
        plans.append((mode, require, items, nonces))
    if not any(items for _, _, items, _ in plans):
        fail(f"{args.dir} holds no presentations: expected {args.dir}/live and {args.dir}/attack_* (each a "
             "video or a folder of frames; edge eval liveness-set writes them)")
        return EXIT_USAGE
    report: dict = {}
    unreadable: list[str] = []
    for mode, require, items, nonces in plans:
        checkers = eval_checkers(args, require)
        outcomes: dict[str, list[Outcome]] = {name: [] for name in checkers}
        progress = Progress(f"{mode} presentations", len(items))
        for (label, item), nonce in zip(items, nonces, strict=True):
            progress.step()
            challenge = Challenge.from_nonce(nonce) if nonce is not None else None
            try:
                with ReplaySource(item, fps=30.0) as source:
                    detections, images = checkers["without_pad"].detect_all(source.frames())
            except CameraError as exc:  # broken data is not a presentation: listed, left out of the metrics
                log.warning("unreadable presentation", extra={"fields": {"path": str(item), "reason": exc.message}})
                unreadable.append(str(item))
                continue
            for name, checker in checkers.items():
                result = checker.decide(detections, images, challenge=challenge)
                outcomes[name].append(Outcome(label, result.live, result.score, result.failure_to_acquire))
        progress.finish()
        report[mode] = {name: metrics(found) for name, found in outcomes.items()}
    report["unreadable"] = unreadable
    emit(report)
    return EXIT_OK


def _write(folder: Path, presentation: list[tuple[float, np.ndarray]], nonce: bytes | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame_index, (_, frame) in enumerate(presentation):
        cv2.imwrite(str(folder / f"{frame_index:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if nonce is not None:
        (folder / NONCE_FILE).write_text(nonce.hex() + "\n")


def run_generate(args: argparse.Namespace) -> int:
    from edge.imageio import load_image
    from edge.liveness.attacks import (
        bent_photo_attack,
        live_windows,
        print_attack,
        replay_attack,
        trimmed_heads,
        waved_photo_attack,
    )

    rng = np.random.default_rng(args.seed)
    video_path = args.data / "video" / "short_hamilton_clip.mp4"
    portraits = sorted((args.data / "faces" / "people").glob("*/*.jp*g"))
    live_clips = sorted((args.data / "video" / "live").glob("*.mp4"))
    if not video_path.is_file() or not portraits:
        fail(f"need {video_path} and portraits under {args.data / 'faces' / 'people'}")
        return EXIT_USAGE
    with ReplaySource(video_path) as source:
        video = list(source.frames())
    windows = list(live_windows(video, length=30, step=10))
    rng.shuffle(windows)
    photos = [load_image(p) for p in portraits]
    detector = build_face_stage(config_from_args(args)).detector
    heads = trimmed_heads(photos, detector)
    n = args.per_type
    # One presentation at a time, written as it is made: a set is thousands of 640x480 frames.
    makers: dict[str, Callable[[int], list[tuple[float, np.ndarray]]]] = {
        "live": lambda i: windows[i],
        "attack_print": lambda i: print_attack(photos[i % len(photos)], rng, 30),
        "attack_waved_photo": lambda i: waved_photo_attack(photos[(i * 7) % len(photos)], rng, 30),
        "attack_replay": lambda i: replay_attack(windows[i % len(windows)], rng),
        "attack_bent_photo": lambda i: bent_photo_attack(heads[i % len(heads)], rng, 30),
        "attack_bent_photo_horizontal": lambda i: bent_photo_attack(heads[i % len(heads)], rng, 30,
                                                                    axis="horizontal")}
    counts = {label: min(n, len(windows)) if label == "live" else n for label in makers}
    progress = Progress("passive presentations", sum(counts.values()))
    for label, make in makers.items():
        for index in range(counts[label]):
            progress.step()
            _write(args.out / label / f"{index:03d}", make(index))
    progress.finish()
    if args.challenge_set:
        counts |= {f"challenge/{k}": v for k, v in _write_challenge_set(args, rng, detector, heads, live_clips).items()}
    emit({"out": str(args.out), "counts": counts, "seed": args.seed})
    return EXIT_OK


def _write_challenge_set(args: argparse.Namespace, rng: np.random.Generator, detector: FaceDetector,
                         heads: list[np.ndarray], live_clips: list[Path]) -> dict[str, int]:
    """Challenge presentations, each in a folder with the nonce it answers (edge.liveness.presentations):
    real turns from the live clips, the same turns replayed on a screen, and photos turned as asked."""
    from edge.liveness.attacks import bent_photo_attack, replay_attack
    from edge.liveness.presentations import WINDOW_FRAMES, answering_turn, turn_cuts

    out = args.out / "challenge"
    counts = {"live": 0, "attack_replayed_turn": 0}
    progress = Progress("live clips", len(live_clips))
    for clip in live_clips:
        progress.step()
        with ReplaySource(clip, fps=30.0) as source:
            frames = list(source.frames())
        for cut, window in turn_cuts(frames, [(t, detector.detect(frame)) for t, frame in frames], rng):
            _write(out / "live" / f"{counts['live']:03d}", window, cut.nonce)
            counts["live"] += 1
            _write(out / "attack_replayed_turn" / f"{counts['attack_replayed_turn']:03d}",
                   replay_attack(window, rng), cut.nonce)
            counts["attack_replayed_turn"] += 1
    progress.finish()
    kinds = {"attack_bent_photo_turned": ("vertical", (0.3, 0.5, 0.8)),
             "attack_bent_photo_horizontal_turned": ("horizontal", (0.3, 0.5, 0.8)),
             "attack_flat_photo_turned": ("vertical", (1e4,))}
    progress = Progress("photos answering the prompt", len(kinds) * args.per_type)
    for label, (axis, radii) in kinds.items():
        for i in range(args.per_type):
            progress.step()
            nonce = rng.bytes(16)
            presentation = bent_photo_attack(heads[i % len(heads)], rng, frames=WINDOW_FRAMES,
                                             radius_widths=radii[i % len(radii)], axis=axis,
                                             yaw_deg_at=answering_turn(Challenge.from_nonce(nonce), rng))
            _write(out / label / f"{i:03d}", presentation, nonce)
        counts[label] = args.per_type
    progress.finish()
    return counts
