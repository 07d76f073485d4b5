"""Bounded fuzzing of the daemon's request messages in CI: arbitrary bytes and structurally valid but hostile
protobuf, sent over mutual TLS to the real daemon. Whatever arrives, the answer is a deliberate status (never
INTERNAL or UNKNOWN, which would mean an unhandled exception) and the daemon keeps serving.

A coverage-guided version for long runs is fuzz/fuzz_daemon_requests.py.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.proto_gen.edge.v1 import edge_pb2 as pb

from .conftest import Camera, EdgeDaemon, connect, make_config

pytestmark = pytest.mark.slow
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
DELIBERATE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
METHODS = {"/edge.v1.VerificationService/Verify": pb.VerifyRequest,
           "/edge.v1.CardService/DecodeCard": pb.DecodeCardRequest,
           "/edge.v1.DeviceService/GetDeviceInfo": pb.DeviceInfoRequest,
           "/edge.v1.EnrollmentService/Enroll": pb.EnrollRequest}


@pytest.fixture(scope="module")
def fuzz_channel(tmp_path_factory, world):
    # A daemon of its own whose rate limit does not turn the fuzzer away: every input reaches the pipeline.
    config = make_config(tmp_path_factory.mktemp("fuzz"), world.issuer, caller_sessions_per_min=1e6,
                         other_concurrency=64)
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["no_card"]))  # quick RETRY
    daemon.start()
    with connect(daemon) as channel:
        yield channel
    daemon.stop(1.0)


def status_of(channel: grpc.Channel, method: str, body: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        call(body, timeout=20)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


def hostile_verify() -> st.SearchStrategy[bytes]:
    texts = st.one_of(st.text(max_size=300), st.just("EHC1:"), st.from_regex(r"EHC1:[0-9A-Z $%*+\-./:]{0,400}"),
                      st.text(min_size=4000, max_size=5000))
    return st.builds(lambda nonce, text, gate, rid: pb.VerifyRequest(nonce=nonce, card_text=text, gate_id=gate,
                                                                     request_id=rid).SerializeToString(),
                     st.binary(max_size=80), texts, st.text(max_size=200), st.text(max_size=200))


@SETTINGS
@given(method=st.sampled_from(sorted(METHODS)), body=st.binary(max_size=512))
def test_arbitrary_bytes_get_a_deliberate_status(fuzz_channel, method, body):
    assert status_of(fuzz_channel, method, body) in DELIBERATE


@SETTINGS
@given(body=hostile_verify())
def test_hostile_verify_requests_get_a_deliberate_status(fuzz_channel, body):
    status = status_of(fuzz_channel, "/edge.v1.VerificationService/Verify", body)
    assert status in DELIBERATE and status != grpc.StatusCode.RESOURCE_EXHAUSTED


@SETTINGS
@given(text=st.one_of(st.text(max_size=5000), st.from_regex(r"EHC1:[0-9A-Z $%*+\-./:]{1,600}")))
def test_hostile_card_text_gets_a_deliberate_status(fuzz_channel, text):
    body = pb.DecodeCardRequest(card_text=text).SerializeToString()
    assert status_of(fuzz_channel, "/edge.v1.CardService/DecodeCard", body) in DELIBERATE


def test_the_daemon_still_serves_after_the_fuzzing(fuzz_channel):
    reply = health_pb2_grpc.HealthStub(fuzz_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
