"""Coverage-guided fuzz target over the daemon's request handling (atheris / libFuzzer), in process.

Run: .venv/bin/pip install atheris && .venv/bin/python fuzz/fuzz_daemon_requests.py -max_total_time=300
Each input is parsed the way the interceptor parses a body (edge.server.interceptors), then validated and
served the way VerifyRequest and DecodeCardRequest are (request checks, card decoding). Anything but a
typed EdgeError or a reply escaping is a crash. tests/server/test_fuzz_requests.py runs the same properties
against a real daemon over mutual TLS in CI, for a bounded number of examples.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError

    from edge.credential.trust import TrustList
    from edge.credential.verifier import CardVerifier
    from edge.errors import EdgeError
    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.server.servicers import CardServicer, validate_verify

CARDS = CardServicer(CardVerifier(TrustList(), site="ward-7"))


def one_input(data: bytes) -> None:
    for message in (pb.VerifyRequest, pb.DecodeCardRequest):
        try:
            request = message.FromString(data)
        except (DecodeError, ValueError, RuntimeError):
            continue  # the interceptor answers INVALID_ARGUMENT
        try:
            if isinstance(request, pb.VerifyRequest):
                validate_verify(request)
            else:
                CARDS.DecodeCard(request, None)  # type: ignore[arg-type]
        except EdgeError:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
