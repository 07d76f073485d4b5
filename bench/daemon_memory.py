"""The daemon's resident memory over many sessions: a real `edge serve` (mutual TLS, replay camera with the
card and 45 frames of the holder), ``SESSIONS`` Verify calls one after another, RSS (VmRSS) read every 50,
with its anonymous and file-backed parts (RssAnon, RssFile).

Each variant is a separate daemon process, run in the same script so the curves compare: ``baseline`` (glibc
and onnxruntime defaults), the daemon as shipped (``models.memory_arena = false`` and ``malloc_trim`` after
each session, ``MALLOC_ARENA_MAX=1`` as the systemd unit sets it), the same with ``face.model =
"sface+dlib"``, and that with two glibc heaps (the unit's setting until 2026-11-24); ``shipped_challenge`` is
the shipped daemon with the head-turn challenge every site profile requires (a 110-frame recording fills
its first window; sessions end DENY or RETRY but for chance, which changes nothing for memory). All start
with a warm Numba cache, as a board does after its first start (a cold cache costs ~40 MB more of JIT memory,
once), and all hand clean library pages back after warm-up (edge/server/memory.py), which is not
configurable.

    .venv/bin/python bench/daemon_memory.py [SESSIONS [VARIANT...]]    (default 1000, all; results/daemon_memory.json,
    a run of some variants results/daemon_memory_VARIANT-....json)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grpc_load
from common import DATA, save

from edge.assembly import build_face_stage
from edge.config import config_from_dict
from edge.demo import HOLDER_PORTRAIT, DevIssuer, speaker_frames, write_scene
from edge.imageio import load_image
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.ca import init_ca, issue_cert
from edge.security.templates import TemplateStore, template_digest

VARIANTS = {
    "baseline": ({"memory_arena": "true"}, {"trim": "false"}, {}, "sface"),
    "shipped": ({"memory_arena": "false"}, {"trim": "true"}, {"MALLOC_ARENA_MAX": "1"}, "sface"),
    "shipped_sface_dlib": ({"memory_arena": "false"}, {"trim": "true"}, {"MALLOC_ARENA_MAX": "1"}, "sface+dlib"),
    "two_heaps_sface_dlib": ({"memory_arena": "false"}, {"trim": "true"}, {"MALLOC_ARENA_MAX": "2"}, "sface+dlib"),
    "shipped_challenge": ({"memory_arena": "false"}, {"trim": "true"}, {"MALLOC_ARENA_MAX": "1"}, "sface"),
}
#: Variants whose sessions run the head-turn challenge, as every shipped site profile does: a recording of
#: CHALLENGE_FRAMES fills the longest window (the recording cannot answer a random prompt, so most end DENY).
CHALLENGE = {"shipped_challenge"}
CHALLENGE_FRAMES = 110


def main() -> None:
    sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    chosen = sys.argv[2:] or list(VARIANTS)
    work = Path(tempfile.mkdtemp(prefix="edge-mem-"))
    grpc_load.PKI["dir"] = work / "pki"
    init_ca(grpc_load.PKI["dir"])
    issue_cert(grpc_load.PKI["dir"], "edge-device", server=True)
    issue_cert(grpc_load.PKI["dir"], "bench", role="controller")
    issuer = DevIssuer(work / "issuer")
    holder, frames = load_image(DATA / HOLDER_PORTRAIT), speaker_frames(DATA, CHALLENGE_FRAMES)
    cards = {}  # face model -> (template, card id, scenes): the card commits to the model's template
    for face_model in sorted({VARIANTS[name][3] for name in chosen}):
        stage = build_face_stage(config_from_dict({"face": {"model": face_model}}, "bench"))
        template = stage.embed_image(holder).vector
        text, card_id = issuer.issue(template_digest(template), site="bench", model_id=stage.model.model_id)
        cards[face_model] = (template, card_id, stage.model.model_id,
                             {False: write_scene(work / f"scene-{face_model}", text, frames[:45]),
                              True: write_scene(work / f"scene-{face_model}-long", text, frames)})
    results: dict = {"date": time.strftime("%Y-%m-%d"), "sessions": sessions, "variants": {}}
    cache = tempfile.mkdtemp(prefix="numba-cache-")
    subprocess.run([sys.executable, "-c", "from edge.liveness import kernels; kernels.warm_up()"], check=True,
                   env={**os.environ, "NUMBA_CACHE_DIR": cache})
    for name in chosen:
        models, server, env, face_model = VARIANTS[name]
        template, card_id, model_id, scenes = cards[face_model]
        challenge = name in CHALLENGE
        data = work / f"device-{name}"
        store = TemplateStore(data / "templates.sqlite", data / "keys")
        store.put(card_id.hex(), template, model_id)
        store.close()
        config = grpc_load.write_bench_config(
            work / f"{name}.toml", data, issuer.trust_path, scenes[challenge],
            models=f"memory_arena = {models['memory_arena']}", face=f'model = "{face_model}"',
            site="max_failures = 100000", challenge=challenge,
            server=f"caller_sessions_per_min = 1000000\ntrim_after_session = {server['trim']}")
        os.environ.update(env)
        try:
            proc, port, _ = grpc_load.start_daemon(config, cache, work / f"{name}.port")
        finally:
            for key in env:
                os.environ.pop(key, None)
        curve = [(0, grpc_load.rss_mb(proc.pid))]
        split = [(0, grpc_load.rss_mb(proc.pid, "RssAnon"), grpc_load.rss_mb(proc.pid, "RssFile"))]
        with grpc_load.channel_to(port) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            for index in range(1, sessions + 1):
                reply = stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=120)
                # A recording answers a random prompt by chance only, and ends before a retry's window: the
                # challenge sessions end DENY or RETRY (no_face) but for chance, after one full window.
                assert reply.decision == pb.ALLOW or challenge, list(reply.reasons)
                if index % 50 == 0:
                    curve.append((index, grpc_load.rss_mb(proc.pid)))
                    split.append((index, grpc_load.rss_mb(proc.pid, "RssAnon"), grpc_load.rss_mb(proc.pid, "RssFile")))
        proc.terminate()
        proc.wait(30)
        after_warmup = [rss for count, rss in curve if count >= 100]
        results["variants"][name] = {"rss_mb_every_50": curve, "start_mb": curve[0][1], "end_mb": curve[-1][1],
                                     "max_mb": max(rss for _, rss in curve),
                                     "anon_file_mb_every_50": split, "max_anon_mb": max(a for _, a, _ in split),
                                     "growth_after_100_mb": round(after_warmup[-1] - after_warmup[0], 1)
                                     if len(after_warmup) > 1 else None}
        print(name, results["variants"][name]["start_mb"], "->", results["variants"][name]["end_mb"], flush=True)
    # A run of some variants is saved beside the full run, not over it.
    print(save("daemon_memory" if set(chosen) == set(VARIANTS) else "daemon_memory_" + "-".join(chosen), results))


if __name__ == "__main__":
    main()
