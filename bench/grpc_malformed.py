"""Memory kept per malformed request: grpcio's own deserialisation versus parsing in our interceptor.

Two bare servers in one process run (the same DecodeCard method), each sent 20,000 bodies that are not
protobuf, 100 at a time: (a) the generated servicer, where grpcio parses the body and on failure answers
INTERNAL; (b) the method registered with ``request_deserializer=None`` and parsed by our code, as
edge.server.interceptors does, answering INVALID_ARGUMENT. RSS (VmRSS) is read before and after, median of
``RUNS`` runs; results in bench/results/grpc_malformed.json.

    .venv/bin/python bench/grpc_malformed.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = 3
CHILD = r'''
import gc, sys, grpc
from concurrent import futures
from edge.proto_gen.edge.v1 import edge_pb2 as pb, edge_pb2_grpc as pb_grpc
mode = sys.argv[1]
server = grpc.server(futures.ThreadPoolExecutor(8))
if mode == "ours":
    def handler(raw, context):
        try:
            pb.DecodeCardRequest.FromString(raw)
        except Exception:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a DecodeCardRequest")
        return pb.DecodeCardResponse()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("edge.v1.CardService", {
        "DecodeCard": grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=None, response_serializer=pb.DecodeCardResponse.SerializeToString)}),))
else:
    class Card(pb_grpc.CardServiceServicer):
        def DecodeCard(self, request, context):
            return pb.DecodeCardResponse()
    pb_grpc.add_CardServiceServicer_to_server(Card(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
call = channel.unary_unary("/edge.v1.CardService/DecodeCard", request_serializer=None, response_deserializer=None)
codes = {}
def burst(n):
    for f in [call.future(b"\xff\xff\xff\xff", timeout=10) for _ in range(n)]:
        try:
            f.result()
        except grpc.RpcError as e:
            codes[e.code().name] = codes.get(e.code().name, 0) + 1
for _ in range(10):
    burst(100)
start = rss()
for _ in range(200):
    burst(100)
gc.collect()
print(f"{start} {rss()} {max(codes, key=codes.get)}")
'''


def run(mode: str) -> tuple[float, float, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                         cwd=HERE.parent).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def main() -> None:
    results = {}
    for mode in ("grpcio", "ours"):
        runs = [run(m) for m in [mode] * RUNS]
        growth = statistics.median(end - start for start, end, _ in runs)
        results[mode] = {"rss_start_mb": round(statistics.median(r[0] for r in runs), 1),
                         "rss_growth_mb_per_20k": round(growth, 1), "kb_per_request": round(growth * 1024 / 20000, 2),
                         "status": runs[0][2]}
    out = HERE / "results" / "grpc_malformed.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
