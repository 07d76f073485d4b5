"""``edge liveness --json SOURCE`` and ``edge eval liveness DIR`` (plus the generated evaluation set)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from edge.assembly import build_face_stage
from edge.camera.sources import ReplaySource
from edge.cli.common import EXIT_DENIED, EXIT_OK, EXIT_USAGE, config_from_args, emit, fail
from edge.cli.progress import Progress
from edge.liveness.checker import LivenessChecker, LivenessThresholds
from edge.liveness.evaluation import Outcome, metrics
from edge.liveness.pad import PADModel, pad_model_dir
from edge.liveness.temporal import Challenge


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("liveness", help="liveness decision on a video file or a folder of frames")
    p.add_argument("source")
    p.add_argument("--json", action="store_true")
    p.add_argument("--challenge", action="store_true",
                   help="issue a nonce-bound challenge, print the prompt the gate would show, and require it")
    p.add_argument("--nonce", help="session nonce in hex (default random) for --challenge")
    p.add_argument("--max-frames", type=int, default=60)
    p.add_argument("--no-pad", action="store_true", help="ignore provisioned PAD models")
    p.add_argument("--config", help="TOML config file")
    p.set_defaults(func=run)

    e = sub.add_parser("eval", help="evaluation reports")
    cmds = e.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    lv = cmds.add_parser("liveness", help="ISO/IEC 30107-3 metrics over DIR/live, DIR/attack_*")
    lv.add_argument("dir", type=Path)
    lv.add_argument("--challenge", action="store_true", help="also require a random challenge per presentation")
    lv.add_argument("--no-pad", action="store_true")
    lv.add_argument("--config", help="TOML config file")
    lv.set_defaults(func=run_eval)
    gen = cmds.add_parser("liveness-set", help="write a generated evaluation set (live windows + attacks)")
    gen.add_argument("out", type=Path)
    gen.add_argument("--data", type=Path, default=Path(os.environ.get("EDGE_TESTDATA", "../shared/data")))
    gen.add_argument("--per-type", type=int, default=12)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=run_generate)


def make_checker(args: argparse.Namespace, require_challenge: bool = False) -> LivenessChecker:
    config = config_from_args(args)
    stage = build_face_stage(config)
    folder = None if args.no_pad else pad_model_dir()
    return LivenessChecker(stage.detector, LivenessThresholds(require_challenge=require_challenge),
                           PADModel.from_dir(folder) if folder else None)


def run(args: argparse.Namespace) -> int:
    challenge = None
    if args.challenge:
        nonce = bytes.fromhex(args.nonce) if args.nonce else os.urandom(16)
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


def run_eval(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        fail(f"{args.dir} is not a folder")
        return EXIT_USAGE
    report = {}
    modes = [("passive", False)] + ([("challenge", True)] if args.challenge else [])
    for mode, require in modes:
        checker = make_checker(args, require_challenge=require)
        outcomes = []
        items = [(label_dir.name, item) for label_dir in sorted(p for p in args.dir.iterdir() if p.is_dir())
                 if label_dir.name == "live" or label_dir.name.startswith("attack_")
                 for item in sorted(label_dir.iterdir())]
        progress = Progress(f"{mode} presentations", len(items))
        for label, item in items:
            progress.step()
            challenge = Challenge.from_nonce(os.urandom(16)) if require else None
            with ReplaySource(item, fps=30.0) as source:
                result = checker.check(source.frames(), challenge=challenge)
            outcomes.append(Outcome(label, result.live, result.score, result.failure_to_acquire))
        progress.finish()
        report[mode] = metrics(outcomes)
        report[mode]["pad_model"] = checker.pad is not None
    emit(report)
    return EXIT_OK


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
    sets = {"live": windows[:args.per_type],
            "attack_print": [print_attack(photos[i % len(photos)], rng, 30) for i in range(args.per_type)],
            "attack_waved_photo": [waved_photo_attack(photos[(i * 7) % len(photos)], rng, 30)
                                   for i in range(args.per_type)],
            "attack_replay": [replay_attack(windows[i % len(windows)], rng) for i in range(args.per_type)],
            "attack_bent_photo": [bent_photo_attack(heads[i % len(heads)], rng, 30) for i in range(args.per_type)]}
    for label, presentations in sets.items():
        for index, presentation in enumerate(presentations):
            folder = args.out / label / f"{index:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for frame_index, (_, frame) in enumerate(presentation):
                cv2.imwrite(str(folder / f"{frame_index:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    emit({"out": str(args.out), "counts": {k: len(v) for k, v in sets.items()}, "seed": args.seed})
    return EXIT_OK



