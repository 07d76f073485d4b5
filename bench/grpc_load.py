"""Daemon benchmark: verifications/s and latency with 1, 2, 4 concurrent gRPC clients, beside the same
pipeline called in-process (the peer: what gRPC and the daemon add); start-up time and resident memory of
a real `edge serve` process with a cold and a warm Numba cache.

The camera is a non-realtime replay of the demo scene (card QR, then 45 frames of the holder), so the
numbers are compute, not camera time. One session owns the camera, so clients queue: throughput stays
flat and latency grows with clients, by design.
Run: .venv/bin/python bench/grpc_load.py  (writes bench/results/grpc_load.json)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.demo import HOLDER_PORTRAIT, DevIssuer, speaker_frames, write_scene
from edge.imageio import load_image
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.templates import TemplateStore, template_digest
from edge.server.daemon import MODEL_ID

CALLS_PER_CLIENT = 8
PKI: dict[str, Path] = {}


def channel_to(port: int) -> grpc.Channel:
    """Mutual TLS as a gate controller, as a real caller connects."""
    folder = PKI["dir"]
    credentials = grpc.ssl_channel_credentials((folder / "ca.pem").read_bytes(), (folder / "bench.key").read_bytes(),
                                               (folder / "bench.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                               options=[("grpc.ssl_target_name_override", "edge-device")])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A /proc/PID/status memory line in MB: VmRSS, or its parts RssAnon (heap, stacks: what the process
    really owns) and RssFile (mapped files such as shared libraries: clean pages the kernel can drop and
    re-read under pressure)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def write_bench_config(path: Path, data: Path, trust_list: Path, scene: Path, *, models: str = "", site: str = "",
                       camera: str = "", server: str = "", face: str = "", challenge: bool = False) -> Path:
    """A device config for a benchmark daemon: the bench PKI, a replay camera on ``scene``, the challenge off
    unless ``challenge``; the keyword arguments are extra TOML lines for those sections (limits raised for
    load, memory knobs)."""
    path.write_text(f"""
[models]
{models}
[face]
{face}
[device]
data_dir = "{data}"
[card]
trust_list = "{trust_list}"
[site]
id = "bench"
require_challenge = {str(challenge).lower()}
{site}
[camera]
source = "replay:{scene}"
{camera}
[server]
address = "127.0.0.1:0"
tls_dir = "{PKI['dir']}"
server_cert = "edge-device"
{server}
""")
    return path


def start_daemon(config: Path, cache: str, port_file: Path) -> tuple[subprocess.Popen, int, float]:
    port_file.unlink(missing_ok=True)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--config", str(config), "--port-file",
                             str(port_file)], env={**os.environ, "NUMBA_CACHE_DIR": cache},
                            stderr=subprocess.DEVNULL)
    while not (port_file.exists() and port_file.read_text()):
        if proc.poll() is not None:
            raise RuntimeError("edge serve exited")
        time.sleep(0.02)
    port = int(port_file.read_text())
    with channel_to(port) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
            time.sleep(0.02)
    return proc, port, time.monotonic() - began


def load(port: int, clients: int) -> dict:
    latencies: list[float] = []
    decisions: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with channel_to(port) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            for _ in range(CALLS_PER_CLIENT):
                began = time.perf_counter()
                reply = stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=120)
                with lock:
                    latencies.append((time.perf_counter() - began) * 1000)
                    decisions.append(reply.decision)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"clients": clients, "calls": len(latencies), "per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "all_allow": all(d == pb.ALLOW for d in decisions)}


def in_process_peer(config_path: Path) -> dict:
    from edge.camera.sources import ReplaySource
    from edge.server.daemon import EdgeDaemon

    config = load_config(config_path)
    daemon = EdgeDaemon(config)
    daemon.warm_up()
    scene = Path(config.camera.source.removeprefix("replay:"))
    times = []
    for _ in range(CALLS_PER_CLIENT):
        began = time.perf_counter()
        outcome = daemon.pipeline.verify(iter(ReplaySource(scene).frames()), nonce=os.urandom(16))
        times.append((time.perf_counter() - began) * 1000)
        assert outcome.decision == "ALLOW", outcome.reasons
    daemon.close()
    median = statistics.median(times)
    return {"calls": len(times), "p50_ms": round(median, 1), "per_s": round(1000 / median, 2)}


def main() -> None:
    from edge.security.ca import init_ca, issue_cert

    work = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    PKI["dir"] = work / "pki"
    init_ca(PKI["dir"])
    issue_cert(PKI["dir"], "edge-device", server=True)
    issue_cert(PKI["dir"], "bench", role="controller")
    issuer = DevIssuer(work / "issuer")
    stage = build_face_stage(load_config())
    template = stage.embed_image(load_image(DATA / HOLDER_PORTRAIT)).vector
    text, card_id = issuer.issue(template_digest(template), site="bench")
    scene = write_scene(work / "scene", text, speaker_frames(DATA))
    data = work / "device"
    store = TemplateStore(data / "templates.sqlite", data / "keys")
    store.put(card_id.hex(), template, MODEL_ID)
    store.close()
    config = write_bench_config(work / "edge.toml", data, issuer.trust_path, scene,
                                camera="wait_s = 120",
                                server="verify_concurrency = 4\ncaller_sessions_per_min = 100000")
    results: dict = {"start": {}, "load": [], "scene_frames": 48}
    cache = tempfile.mkdtemp(prefix="numba-cache-")
    for label in ("cold_numba_cache", "warm_numba_cache"):
        proc, port, seconds = start_daemon(config, cache, work / "port")
        results["start"][label] = {"to_serving_s": round(seconds, 2), "rss_mb": rss_mb(proc.pid)}
        print(label, results["start"][label], flush=True)
        if label == "warm_numba_cache":
            for clients in (1, 2, 4):
                results["load"].append(load(port, clients))
                print(results["load"][-1], flush=True)
            results["start"][label]["rss_after_load_mb"] = rss_mb(proc.pid)
        proc.terminate()
        proc.wait(30)
    results["in_process_peer"] = in_process_peer(config)
    print("in-process", results["in_process_peer"])
    save("grpc_load", results)


if __name__ == "__main__":
    main()
