"""Template sync at a large site: a registry (SQLite) holding ``TEMPLATES`` SFace templates for one site and a
device syncing them over gRPC with mutual TLS, in one process. Measured, median of ``RUNS`` each:

1. a full sync, every template sealed at the registry, sent in pages and checked on the device, which already
   holds them all (what every sync of every gate did until 2026-11-24; the peer of 2);
2. a sync when nothing changed (the registry's templates version is the device's: answered ``unchanged``);
3. the bytes the process wrote to disk over each (``/proc/self/io``, after an ``os.sync``): what a board's SD
   card takes each minute at the default sync interval; beside it, what rewriting every template (one
   ``TemplateStore.put`` each, as every sync did until 2026-11-24) writes.

    .venv/bin/python bench/template_sync.py [TEMPLATES]     (default 7000; results/template_sync.json)
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

common.unshadow_registry()  # bench/registry.py would shadow the `registry` package

from edge.credential.trust import TrustList
from edge.credential.verifier import CardVerifier
from edge.registry_client.sync import Syncer
from edge.registry_client.transport import GrpcTransport
from edge.security.ca import init_ca, issue_cert
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519, raw_public, seal
from edge.security.templates import TemplateStore
from registry.service import RegistryServer, RegistryState, TLSFiles
from registry.storage import DeviceRecord, SQLiteStorage

RUNS = 5


def disk_writes() -> int:
    """Bytes this process has caused to be written to storage (Linux ``write_bytes``), after flushing."""
    os.sync()
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines() if line)
    return int(fields["write_bytes"])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 7000
    work = Path(tempfile.mkdtemp(prefix="edge-tsync-"))
    pki = work / "pki"
    init_ca(pki)
    issue_cert(pki, "registry", server=True)
    issue_cert(pki, "dev-a")
    state = RegistryState.open(SQLiteStorage(work / "registry.sqlite"), work / "state")
    device_dir = work / "device"
    key = DeviceKey.load_or_create(device_dir / "keys")
    enc = load_or_create_x25519(device_dir / "keys")
    state.storage.register_device(DeviceRecord("dev-a", key.public_raw, raw_public(enc.public_key()), "ward-7"))
    rng = np.random.default_rng(0)
    vectors = {}
    with state.storage.atomic():
        for i in range(count):
            vector = rng.normal(size=128).astype("<f4")
            vector = (vector / np.linalg.norm(vector)).astype("<f4")
            card_id = f"{i:032x}"
            vectors[card_id] = vector
            state.storage.put_template(card_id, seal(state.template_public_key, vector.tobytes(), card_id.encode()),
                                       "sface-2021dec-fp32", hashlib.sha256(vector.tobytes()).digest(), "ward-7")
    server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    port = server.start("127.0.0.1:0")
    transport = GrpcTransport(f"127.0.0.1:{port}", tls=(pki / "ca.pem", pki / "dev-a.pem", pki / "dev-a.key"),
                              server_name="registry")
    templates = TemplateStore(device_dir / "templates.sqlite", device_dir / "keys")
    syncer = Syncer(transport, device_id="dev-a", verifier=CardVerifier(TrustList(), site="ward-7"),
                    templates=templates, enc_key=enc, state_dir=device_dir)
    began = time.perf_counter()
    first = syncer.sync_once()
    first_s = time.perf_counter() - began
    assert first.templates == count and not first.skipped, first
    full, unchanged, full_bytes, unchanged_bytes, rewrite_bytes = [], [], [], [], []
    for _ in range(RUNS):
        syncer._full_sync_due = 0.0  # the hourly full sync: the whole list, as every sync was before
        before, began = disk_writes(), time.perf_counter()
        report = syncer.sync_once()
        full.append(time.perf_counter() - began)
        full_bytes.append(disk_writes() - before)
        assert report.templates == count and report.written == 0
        before, began = disk_writes(), time.perf_counter()
        syncer.sync_once()
        unchanged.append(time.perf_counter() - began)
        unchanged_bytes.append(disk_writes() - before)
        before = disk_writes()
        for card_id, vector in vectors.items():  # the old sync's writes: every template again, one commit each
            templates.put(card_id, vector, "sface-2021dec-fp32", source="registry")
        rewrite_bytes.append(disk_writes() - before)
    result = {"date": time.strftime("%Y-%m-%d"), "templates": count, "runs": RUNS,
              "first_sync_s": round(first_s, 3),
              "full_sync_s": round(statistics.median(full), 3),
              "unchanged_sync_s": round(statistics.median(unchanged), 4),
              "full_sync_disk_bytes": int(statistics.median(full_bytes)),
              "unchanged_sync_disk_bytes": int(statistics.median(unchanged_bytes)),
              "rewrite_every_template_disk_bytes": int(statistics.median(rewrite_bytes))}
    templates.close()
    transport.close()
    server.stop(0.5)
    print(common.save("template_sync", result))
    print(result)


if __name__ == "__main__":
    main()
