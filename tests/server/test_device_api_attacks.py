"""The device API from an attacker's seat on the hospital network (issue 10, findings 3-5 and 9).

Each test fails on the daemon before the fix: it listened in plaintext, let anyone Enroll, signed a token
for every junk Verify, answered malformed bodies INTERNAL while keeping ~19 kB each, and let idle streams
hold the session slots forever.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import time

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc

from .conftest import PKI, SERVER_NAME, Camera, EdgeDaemon, connect, enroll, make_config

pytestmark = pytest.mark.slow


def test_an_anonymous_client_cannot_even_complete_the_handshake(daemon):
    with grpc.insecure_channel(f"127.0.0.1:{daemon.port}") as plain, pytest.raises(grpc.RpcError) as e:
        pb_grpc.DeviceServiceStub(plain).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # TLS without a client certificate: the server refuses the handshake itself.
    context = ssl.create_default_context(cafile=str(PKI["dir"] / "ca.pem"))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                answer = tls.recv(64)  # TLS 1.3 reports the missing certificate on the first read
        except (ssl.SSLError, ConnectionResetError):
            answer = b""
    assert answer == b""  # not one byte of HTTP/2 for a client without a certificate


def test_a_gate_controller_cannot_enroll_or_read_the_configuration(daemon, world):
    with connect(daemon, "controller") as channel:
        enroll_stub = pb_grpc.EnrollmentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            enroll_stub.Enroll(pb.EnrollRequest(card_id=world.cards["holder"][1].hex()), timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
        assert info.device_id and info.config_json == ""
    with connect(daemon, "operator") as channel:
        info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
        assert '"site"' in info.config_json


def test_a_certificate_without_a_role_may_do_nothing(daemon, world):
    with connect(daemon, "none") as channel:
        for call in (lambda: pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10),
                     lambda: pb_grpc.VerificationServiceStub(channel).Verify(
                         pb.VerifyRequest(nonce=os.urandom(16)), timeout=10)):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _two_cn_certificate(folder):
    """A CA-signed client certificate with two CNs: an operator's name first, a controller's second."""
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator-1"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "gate-controller-1")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("urn:edge:role:operator")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_a_certificate_with_two_common_names_is_refused(daemon):
    cert, key = _two_cn_certificate(PKI["dir"])
    credentials = grpc.ssl_channel_credentials((PKI["dir"] / "ca.pem").read_bytes(), key, cert)
    with grpc.secure_channel(f"127.0.0.1:{daemon.port}", credentials, options=[(
            "grpc.ssl_target_name_override", SERVER_NAME)]) as channel, pytest.raises(grpc.RpcError) as e:
        pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_junk_verify_calls_mint_no_tokens(daemon, camera, world):
    camera.scene = world.scenes["no_card"]
    before = len(daemon.outbox.all_tokens())
    with connect(daemon) as channel:
        stub = pb_grpc.VerificationServiceStub(channel)
        for text in ("EHC1:JUNK", "HC1:" + "A" * 300, "not a card at all"):
            reply = stub.Verify(pb.VerifyRequest(nonce=os.urandom(16), card_text=text), timeout=30)
            assert reply.decision == pb.DENY and not reply.token
    assert len(daemon.outbox.all_tokens()) == before


def test_one_caller_cannot_flood_sessions(tmp_path, world, testdata, face_stage):
    config = make_config(tmp_path, world.issuer, caller_sessions_per_min=6.0)  # burst of 5, then 1 per 10 s
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["no_card"]))
    daemon.start()
    try:
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            codes = []
            for _ in range(7):
                try:
                    stub.Verify(pb.VerifyRequest(nonce=os.urandom(16), card_text="EHC1:JUNK"), timeout=30)
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
                    retry = int(dict(exc.trailing_metadata())["retry-after-ms"])
                    assert 1000 < retry <= 11000
        assert codes == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 2
        with connect(daemon, "operator") as other:  # another caller keeps its own budget
            pb_grpc.VerificationServiceStub(other).Verify(pb.VerifyRequest(nonce=os.urandom(16),
                                                                            card_text="EHC1:JUNK"), timeout=30)
    finally:
        daemon.stop(1.0)


@pytest.mark.parametrize("per_min, passes", [(120.0, True), (6.0, False)])
def test_a_controller_that_waits_as_advised_gets_through_a_short_limit_but_not_a_long_one(tmp_path, world, per_min,
                                                                                          passes):
    """The scenario demos call the gate as a controller should (edge/cli/demo_site.py as_the_gate_advises): past
    the burst of 5 they wait the retry-after-ms the limiter gives; an advice over 5 s is raised at once."""
    from edge.cli.demo_site import as_the_gate_advises

    daemon = EdgeDaemon(make_config(tmp_path, world.issuer, caller_sessions_per_min=per_min),
                        source_factory=Camera(scene=world.scenes["no_card"]))
    daemon.start()
    try:
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)

            def junk() -> pb.VerifyResponse:
                return stub.Verify(pb.VerifyRequest(nonce=os.urandom(16), card_text="EHC1:JUNK"), timeout=30)

            replies = [as_the_gate_advises(junk) for _ in range(5)]
            began = time.monotonic()
            if passes:
                replies += [as_the_gate_advises(junk) for _ in range(3)]  # 1 per 0.5 s after the burst
                assert time.monotonic() - began >= 0.5
            else:
                with pytest.raises(grpc.RpcError) as e:
                    as_the_gate_advises(junk)  # the limiter advises ~10 s: not waited for
                assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() - began < 5
        assert all(r.decision == pb.DENY for r in replies)
    finally:
        daemon.stop(1.0)


def test_a_body_that_is_not_protobuf_is_invalid_argument(daemon):
    with connect(daemon) as channel:
        for method in ("/edge.v1.CardService/DecodeCard", "/edge.v1.VerificationService/Verify"):
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as e:
                call(b"\xff\xff\xff\xff", timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "x-request-id" in dict(e.value.trailing_metadata())  # the id reaches errors too


def test_idle_session_streams_are_closed_and_free_their_slots(tmp_path, world, testdata, face_stage):
    config = make_config(tmp_path, world.issuer, verify_concurrency=2, stream_idle_s=1.0)
    camera = Camera(scene=world.scenes["holder"])
    daemon = EdgeDaemon(config, source_factory=camera)
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)

            def never_starts():
                time.sleep(30)
                yield pb.SessionClientMessage(cancel=True)

            idle = [stub.VerifySession(never_starts(), timeout=30) for _ in range(2)]
            began = time.monotonic()
            for stream in idle:
                with pytest.raises(grpc.RpcError) as e:
                    list(stream)
                assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - began < 10
            reply = stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
            assert reply.decision == pb.ALLOW
    finally:
        daemon.stop(1.0)


def test_a_session_ends_when_its_callers_deadline_passes(tmp_path, world, testdata, face_stage):
    camera = Camera(scene=world.scenes["holder"], realtime=True)  # 1.6 s of frames at 30 fps
    daemon = EdgeDaemon(make_config(tmp_path, world.issuer), source_factory=camera)
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            with pytest.raises(grpc.RpcError) as e:
                pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=0.4)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            began = time.monotonic()
            while daemon.camera_lock.locked():  # the server side gave up too, not only the client
                assert time.monotonic() - began < 0.8
                time.sleep(0.01)
    finally:
        daemon.stop(1.0)


def _socket_daemon(folder, world, socket_path) -> EdgeDaemon:
    """A daemon that listens only on the local controller socket ``socket_path`` (no TCP listener)."""
    return EdgeDaemon(make_config(folder, world.issuer, address=None, unix_socket=str(socket_path)),
                      source_factory=Camera(scene=world.scenes["no_card"]))


def test_the_unix_socket_serves_a_local_controller_without_tls(tmp_path, world):
    socket_path = tmp_path / "run" / "edge.sock"
    daemon = _socket_daemon(tmp_path / "d", world, socket_path)
    daemon.start()
    try:
        assert oct(socket_path.stat().st_mode & 0o777) == "0o660"
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
            assert info.device_id == "edge-test-1" and info.config_json == ""  # the controller role
            with pytest.raises(grpc.RpcError) as e:
                pb_grpc.EnrollmentServiceStub(channel).Enroll(pb.EnrollRequest(card_id="ab" * 16), timeout=10)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        daemon.stop(1.0)


def test_no_listener_without_tls_unless_plaintext_is_asked_for(tmp_path, world):
    from edge.errors import ConfigError

    config = make_config(tmp_path, world.issuer, tls_dir=None)
    with pytest.raises(ConfigError) as e:
        EdgeDaemon(config, source_factory=Camera(scene=world.scenes["no_card"]))
    assert e.value.details["key"] == "server.tls_dir"
    assert not (tmp_path / "keys").exists()  # refused before anything was created


def test_a_second_daemon_cannot_take_over_a_live_unix_socket(tmp_path, world):
    from edge.errors import ConfigError

    socket_path = tmp_path / "run" / "edge.sock"
    first = _socket_daemon(tmp_path / "a", world, socket_path)
    first.start()
    try:
        with pytest.raises(ConfigError) as e:
            _socket_daemon(tmp_path / "b", world, socket_path)
        assert e.value.code == "listen_failed"
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:  # the first one still answers
            assert pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10).device_id
    finally:
        first.stop(1.0)
    # A stale socket file (the daemon is gone) is replaced.
    second = _socket_daemon(tmp_path / "b", world, socket_path)
    second.start()
    second.stop(1.0)
