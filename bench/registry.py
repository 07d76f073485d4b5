"""Registry benchmark: token ingest rate on SQLite and on PostgreSQL, and the time to drain a backlog of
10,000 queued tokens from a device outbox, over gRPC with mutual TLS (median of three). The peers: the same
ingest called in-process on the same storage (what the network and TLS add), and the same drain with the
daily cap per device off (what counting a device's tokens of the day at each call costs).
Run: .venv/bin/python bench/registry.py  (writes bench/results/registry.json)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import common

common.unshadow_registry()  # bench/registry.py would shadow the `registry` package
save = common.save

from edge.registry_client.delivery import Deliverer
from edge.registry_client.outbox import Outbox
from edge.registry_client.transport import GrpcTransport
from edge.security.ca import init_ca, issue_cert
from edge.security.clock import ClockGuard
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519, raw_public
from edge.security.tokens import TokenContent, TokenSigner
from registry.dev_postgres import create_database, server_binaries, throwaway_server
from registry.ingest import ingest
from registry.service import RegistryServer, RegistryState, TLSFiles
from registry.storage import DeviceRecord, open_storage

BACKLOG = 10_000


def make_tokens(key: DeviceKey, count: int) -> list[tuple[bytes, bytes]]:
    """(token, token id) pairs signed by the device key."""
    signer = TokenSigner(key, "dev-a", clock=ClockGuard())
    return [signer.sign(TokenContent(card_id=f"{i % 500:032x}", qr_text="EHC1:X", card_kid=b"k" * 8,
                                     nonce=os.urandom(16), decision="ALLOW", reasons=["OK"], checks={"face": 0.7},
                                     site="ward-7", gate="g1", revocation_version=1, sequence=i + 1))
            for i in range(count)]


def run_backend(url: str, work: Path, pki: Path, key: DeviceKey, enc: bytes,
                tokens: list[tuple[bytes, bytes]]) -> dict:
    result: dict = {}
    peer_storage = open_storage(url)
    peer_storage.register_device(DeviceRecord("dev-a", key.public_raw, enc, "ward-7"))
    began = time.perf_counter()
    for token, _ in tokens[:2000]:
        ingest(peer_storage, token, peer_device="dev-a")
    result["in_process_tokens_per_s"] = round(2000 / (time.perf_counter() - began), 1)
    peer_storage.close()

    # The daily cap counts the device's tokens of the day at every delivery call (registry/ingest.py); the
    # peer is the same drain with the cap off, alternated over three runs on fresh databases.
    drains: dict[str, list[float]] = {"with_cap": [], "without_cap": []}
    for run in range(3):
        for name, cap in (("with_cap", 100_000), ("without_cap", 0)):
            seconds, stored = drain(fresh_url(url, work, f"{run}-{name}"), work, pki, key, enc, tokens, cap)
            assert stored == BACKLOG, stored
            drains[name].append(seconds)
    seconds = statistics.median(drains["with_cap"])
    result["grpc_mtls_drain_10000_s"] = round(seconds, 2)
    result["grpc_mtls_tokens_per_s"] = round(BACKLOG / seconds, 1)
    result["grpc_mtls_drain_10000_s_runs"] = {k: [round(v, 2) for v in runs] for k, runs in drains.items()}
    result["grpc_mtls_drain_10000_s_without_cap"] = round(statistics.median(drains["without_cap"]), 2)
    result["stored"] = BACKLOG
    return result


def fresh_url(url: str, work: Path, tag: str) -> str:
    if url.startswith("sqlite"):
        return f"sqlite:///{work / f'registry-{tag}.sqlite'}"
    return create_database(url.rsplit("/", 1)[0])


def drain(url: str, work: Path, pki: Path, key: DeviceKey, enc: bytes, tokens: list[tuple[bytes, bytes]],
          cap: int) -> tuple[float, int]:
    """Seconds to deliver the backlog from a device outbox over gRPC with mutual TLS, and how many were stored."""
    state = RegistryState.open(open_storage(url), work / f"state-{abs(hash(url))}")
    state.max_tokens_per_device_day = cap
    state.storage.register_device(DeviceRecord("dev-a", key.public_raw, enc, "ward-7"))
    server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    port = server.start("127.0.0.1:0")
    transport = GrpcTransport(f"127.0.0.1:{port}", tls=(pki / "ca.pem", pki / "dev-a.pem", pki / "dev-a.key"),
                              server_name="registry", timeout_s=120)
    outbox = Outbox(work / f"outbox-{port}-{abs(hash(url))}.sqlite", max_rows=BACKLOG + 10)
    for token, token_id in tokens:
        outbox.issue(lambda seq, pair=(token, token_id): pair)
    deliverer = Deliverer(outbox, transport, batch=100, max_per_s=1e9)
    began = time.perf_counter()
    while outbox.pending_count():
        deliverer.run_once()
    seconds = time.perf_counter() - began
    stored = state.storage.token_count()
    transport.close()
    server.stop(0.5)
    outbox.close()
    return seconds, stored


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="edge-registry-bench-"))
    pki = work / "pki"
    init_ca(pki)
    issue_cert(pki, "registry", server=True)
    issue_cert(pki, "dev-a")
    key = DeviceKey.load_or_create(work / "keys")
    enc = raw_public(load_or_create_x25519(work / "keys").public_key())
    began = time.perf_counter()
    tokens = make_tokens(key, BACKLOG)
    print(f"signed {BACKLOG} tokens in {time.perf_counter() - began:.1f} s", flush=True)
    results = {"sqlite": run_backend(f"sqlite:///{work / 'registry.sqlite'}", work, pki, key, enc, tokens)}
    print("sqlite", results["sqlite"], flush=True)
    if server_binaries() is not None:
        with throwaway_server() as server:
            results["postgresql"] = run_backend(create_database(server), work, pki, key, enc, tokens)
        print("postgresql", results["postgresql"], flush=True)
    save("registry", results)


if __name__ == "__main__":
    main()
