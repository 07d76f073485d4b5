"""The daemon over a real gRPC channel on localhost: decisions, tokens, errors, limits, shutdown."""

from __future__ import annotations

import os
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from msgspec.structs import replace

from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.tokens import verify_token

from .conftest import EdgeDaemon, connect, enroll, make_config

pytestmark = pytest.mark.slow


def verify(stub, camera, scene, **kwargs):
    camera.scene = scene
    timeout = kwargs.pop("timeout", 60)
    request = pb.VerifyRequest(nonce=kwargs.pop("nonce", os.urandom(16)), gate_id=kwargs.pop("gate_id", "gate-a"),
                               **kwargs)
    return stub.Verify(request, timeout=timeout)


def names(reply):
    return pb.Decision.Name(reply.decision), [pb.ReasonCode.Name(r) for r in reply.reasons]


def test_health_is_serving_after_warm_up(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "edge.v1.VerificationService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING


def test_holder_is_allowed_with_a_token_that_verifies(daemon, verify_stub, camera, world):
    nonce = os.urandom(16)
    reply = verify(verify_stub, camera, world.scenes["holder"], nonce=nonce)
    assert names(reply) == ("ALLOW", ["OK"]), list(reply.messages)
    assert reply.match_score >= reply.match_threshold
    claims = verify_token(reply.token, daemon.key.public_key, now=time.time())
    assert claims["decision"] == "ALLOW" and claims["nonce"] == nonce and claims["sub"] == reply.card_id
    assert claims["cti"].hex() == reply.token_id and claims["iss"] == "edge-test-1"
    assert {t.stage for t in reply.timings} >= {"qr", "card", "liveness", "match", "token", "total"}


def test_card_text_from_the_caller_skips_the_qr_stage(verify_stub, camera, world):
    reply = verify(verify_stub, camera, world.scenes["no_card"], card_text=world.cards["holder"][0])
    # The scene has only 10 face frames: too few for liveness, which asks for a retry, not a verdict.
    assert names(reply)[0] in ("ALLOW", "RETRY")
    assert "qr" in {t.stage for t in reply.timings}


def test_another_person_is_denied(verify_stub, camera, world):
    reply = verify(verify_stub, camera, world.scenes["other"])
    assert names(reply) == ("DENY", ["FACE_MISMATCH"])
    assert reply.token  # denials are signed too, for the audit trail


def test_expired_card_is_denied(verify_stub, camera, world):
    assert names(verify(verify_stub, camera, world.scenes["expired"])) == ("DENY", ["CARD_EXPIRED"])


def test_revoked_card_is_denied(daemon, verify_stub, camera, world):
    daemon.cards.revocations.revoke(world.cards["revoked"][1])
    assert names(verify(verify_stub, camera, world.scenes["revoked"])) == ("DENY", ["CARD_REVOKED"])


def test_static_photo_held_up_is_denied(verify_stub, camera, world):
    decision, reasons = names(verify(verify_stub, camera, world.scenes["photo"]))
    assert decision == "DENY" and reasons[0] in ("LIVENESS_FAILED", "CHALLENGE_FAILED")


def test_a_request_for_another_gate_is_refused_not_answered_for_this_one(verify_stub, camera, world):
    """The request's gate_id was ignored: a controller wired to another gate's device would open its own door
    for a person this device's camera saw. A device configured as gate-a refuses a request for gate-b."""
    with pytest.raises(grpc.RpcError) as e:
        verify(verify_stub, camera, world.scenes["holder"], gate_id="gate-b")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "gate-b" in e.value.details()
    assert dict(e.value.trailing_metadata())["edge-reason"] == "wrong_gate"
    camera.scene = world.scenes["no_card"]  # no gate named: this device's own
    reply = verify_stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
    assert names(reply) == ("RETRY", ["CARD_NOT_FOUND"])


def test_no_card_shown_is_retry(verify_stub, camera, world):
    assert names(verify(verify_stub, camera, world.scenes["no_card"])) == ("RETRY", ["CARD_NOT_FOUND"])


def _scene_with_poster(out, *scenes):
    """The scenes' frames one after another, each with a poster's QR code (a URL) in its corner, as on the
    wall behind a gate."""
    import cv2

    from edge.qr.synthetic import qr_modules, render_symbol

    poster = render_symbol(qr_modules("https://hospital.example/wifi"), 3)
    out.mkdir()
    paths = [path for scene in scenes for path in sorted(scene.glob("*.jpg"))]
    for index, path in enumerate(paths):
        frame = cv2.imread(str(path))
        frame[4:4 + poster.shape[0], 4:4 + poster.shape[1]] = poster[:, :, None]
        cv2.imwrite(str(out / f"{index:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return out


def test_a_qr_code_on_the_wall_in_view_does_not_refuse_every_session(verify_stub, camera, world, tmp_path):
    """A poster's code in view was read as the card: every session was DENY CARD_INVALID while it hung there
    (a sticker in the camera's view was enough to close the gate). Codes that cannot be a card are passed
    over; with nothing else in view the person is told that code is not a card."""
    from edge.qr.advice import NOT_A_CARD

    # The wall alone for a few frames (the person is still reaching for the phone), then the session.
    reply = verify(verify_stub, camera, _scene_with_poster(tmp_path / "holder", world.scenes["no_card"],
                                                           world.scenes["holder"]))
    assert names(reply) == ("ALLOW", ["OK"]), list(reply.messages)
    refused = verify(verify_stub, camera, _scene_with_poster(tmp_path / "poster", world.scenes["no_card"]))
    assert names(refused) == ("RETRY", ["CARD_NOT_FOUND"]) and list(refused.prompts) == [NOT_A_CARD]


@pytest.mark.parametrize("fields", [{"nonce": b"short"}, {"nonce": b"x" * 65}, {"card_text": "E" * 5000},
                                    {"gate_id": "g" * 200}])
def test_malformed_requests_are_invalid_argument(verify_stub, fields):
    request = pb.VerifyRequest(**{"nonce": os.urandom(16), **fields})
    with pytest.raises(grpc.RpcError) as e:
        verify_stub.Verify(request, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(e.value.trailing_metadata())["edge-reason"] == "invalid_request"


def test_decode_card_and_bad_card_text(channel, world):
    cards = pb_grpc.CardServiceStub(channel)
    ok = cards.DecodeCard(pb.DecodeCardRequest(card_text=world.cards["holder"][0]))
    assert ok.valid and ok.card_id == world.cards["holder"][1].hex()
    bad = cards.DecodeCard(pb.DecodeCardRequest(card_text="EHC1:NOT A CARD"))
    assert not bad.valid and bad.reason == pb.CARD_INVALID
    with pytest.raises(grpc.RpcError) as e:
        cards.DecodeCard(pb.DecodeCardRequest(card_text=""))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_device_info(channel, daemon):
    info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest())
    assert info.device_id == "edge-test-1" and info.public_key == daemon.key.public_raw and info.clock_trusted
    assert info.templates >= 4


def test_deadline_exceeded(verify_stub, camera, world):
    camera.realtime = True  # 48 frames at 30 fps take 1.6 s
    try:
        with pytest.raises(grpc.RpcError) as e:
            verify(verify_stub, camera, world.scenes["holder"], timeout=0.5)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        camera.realtime = False
    time.sleep(1.5)  # let the aborted session release the camera


def test_concurrency_above_the_limit_is_resource_exhausted(tmp_path, world, testdata, face_stage):
    from .conftest import Camera

    camera = Camera(scene=world.scenes["holder"], realtime=True)
    daemon = EdgeDaemon(make_config(tmp_path, world.issuer, verify_concurrency=1), source_factory=camera)
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            first: dict = {}
            thread = threading.Thread(target=lambda: first.update(reply=stub.Verify(
                pb.VerifyRequest(nonce=os.urandom(16)), timeout=30)))
            thread.start()
            deadline = time.time() + 30
            while not daemon.camera_lock.locked():  # the first session holds the camera
                assert time.time() < deadline
                time.sleep(0.01)
            with pytest.raises(grpc.RpcError) as e:
                stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=30)
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert int(dict(e.value.trailing_metadata())["retry-after-ms"]) > 0
            thread.join()
            assert names(first["reply"])[0] == "ALLOW"
    finally:
        daemon.stop(2.0)


def test_session_stream_sends_progress_and_result(channel, camera, world):
    camera.scene = world.scenes["holder"]
    stub = pb_grpc.VerificationServiceStub(channel)
    start = pb.SessionClientMessage(start=pb.VerifyRequest(nonce=os.urandom(16), gate_id="gate-a"))
    messages = list(stub.VerifySession(iter([start]), timeout=60))
    kinds = [m.WhichOneof("kind") for m in messages]
    assert kinds[-1] == "result" and "progress" in kinds
    assert messages[-1].result.decision == pb.ALLOW


def test_every_session_runs_on_the_one_session_thread_with_its_request_id(daemon, channel, camera, world,
                                                                         monkeypatch):
    """Sessions keep their memory in one glibc heap by running on one thread (EdgeDaemon.on_session_thread),
    whether they come as a unary call or a stream, and the logs still carry the caller's request id."""
    from edge.log import request_id

    seen = []
    real_verify = daemon.parts.pipeline.verify

    def recording_verify(*args, **kwargs):
        seen.append((threading.current_thread().name, request_id.get()))
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(daemon.parts.pipeline, "verify", recording_verify)
    stub = pb_grpc.VerificationServiceStub(channel)
    assert names(verify(stub, camera, world.scenes["holder"]))[0] == "ALLOW"
    start = pb.SessionClientMessage(start=pb.VerifyRequest(nonce=os.urandom(16), gate_id="gate-a"))
    assert list(stub.VerifySession(iter([start]), timeout=60))[-1].result.decision == pb.ALLOW
    assert len(seen) == 2 and {name for name, _ in seen} == {"edge-session_0"}
    assert all(rid for _, rid in seen) and seen[0][1] != seen[1][1]


def test_session_stream_must_start_with_start(channel):
    stub = pb_grpc.VerificationServiceStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        list(stub.VerifySession(iter([pb.SessionClientMessage(cancel=True)]), timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_repeated_failures_at_a_gate_are_rate_limited(tmp_path, world, testdata, face_stage):
    from .conftest import Camera

    config = make_config(tmp_path, world.issuer)
    config = replace(config, site=replace(config.site, max_failures=2, cooldown_s=60.0))
    camera = Camera(scene=world.scenes["other"])  # the enrolled face is another person's: FACE_MISMATCH
    daemon = EdgeDaemon(config, source_factory=camera)
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            got = [names(stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)) for _ in range(3)]
            camera.scene = world.scenes["holder"]  # even the right person waits out the cool-down
            got.append(names(stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)))
        assert got == [("DENY", ["FACE_MISMATCH"])] * 2 + [("RETRY", ["RATE_LIMITED"])] * 2
    finally:
        daemon.stop(1.0)


def test_enroll_keeps_the_template_and_returns_only_its_digest_and_a_sealed_copy(tmp_path, world, testdata,
                                                                                 face_stage):
    import numpy as np

    from edge.security.sealing import load_or_create_x25519, raw_public, unseal

    from .conftest import Camera

    registry_key = load_or_create_x25519(tmp_path / "registry-keys")
    config = make_config(tmp_path / "device", world.issuer)
    config = replace(config, registry=replace(config.registry, public_key=raw_public(registry_key.public_key()).hex()))
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["holder"]))
    daemon.start()
    try:
        card_id = "ab" * 16
        with connect(daemon, "operator") as operator:
            reply = pb_grpc.EnrollmentServiceStub(operator).Enroll(pb.EnrollRequest(card_id=card_id, frames=5),
                                                                  timeout=60)
            with pytest.raises(grpc.RpcError) as e:
                pb_grpc.EnrollmentServiceStub(operator).Enroll(pb.EnrollRequest(card_id="zz"), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stored = daemon.templates.get(card_id, commitment=bytes.fromhex(reply.template_sha256),
                                      model_id=reply.model_id)
        assert float(stored @ world.holder_template) > 0.5  # the enrolled face is the holder's
        opened = np.frombuffer(unseal(registry_key, reply.sealed_template, card_id.encode()), dtype="<f4")
        np.testing.assert_array_equal(opened, stored)
        assert stored.tobytes() not in reply.SerializeToString()  # only sealed, never in the clear
    finally:
        daemon.stop(1.0)


def _enroll_scene(tmp_path, world, scene, frames=10):
    from .conftest import Camera

    daemon = EdgeDaemon(make_config(tmp_path / "device", world.issuer), source_factory=Camera(scene=scene))
    daemon.start()
    try:
        with connect(daemon, "operator") as operator, pytest.raises(grpc.RpcError) as e:
            pb_grpc.EnrollmentServiceStub(operator).Enroll(pb.EnrollRequest(card_id="cd" * 16, frames=frames),
                                                           timeout=60)
        return e.value, daemon.templates.count()
    finally:
        daemon.stop(1.0)


def test_enroll_refuses_frames_of_two_people_instead_of_blending_them_into_one_template(tmp_path, world, testdata):
    """At a vaccination desk the holder (a child) and the guardian take turns in front of the camera. A
    template averaged over both would let the guardian pass as the child; before, Enroll kept such a blend."""
    import cv2

    from edge.camera.sources import ReplaySource
    from edge.demo import speaker_frames, write_scene

    with ReplaySource(testdata / "video/live/d14.mp4", max_frames=12) as source:
        other = [cv2.resize(frame, (640, 480)) for _, frame in source.frames()]
    scene = write_scene(tmp_path / "two-people", None, speaker_frames(testdata, 5) + other)
    error, templates = _enroll_scene(tmp_path, world, scene)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert dict(error.trailing_metadata())["edge-reason"] == "face_changed"
    assert templates == 0  # nothing kept


def test_enroll_with_two_faces_in_every_frame_says_so_instead_of_no_face(tmp_path, world, testdata):
    """A guardian holding a baby up to the enrollment camera: every frame has two faces, so none is used.
    Before, the desk was told "no usable face", with two faces plainly in view."""
    import cv2
    import numpy as np

    from edge.camera.sources import ReplaySource
    from edge.demo import speaker_frames, write_scene

    with ReplaySource(testdata / "video/live/d14.mp4", max_frames=12) as source:
        other = [frame for _, frame in source.frames()]
    frames = []
    for holder, guardian in zip(speaker_frames(testdata, 12), other, strict=True):
        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[120:360, 0:320] = cv2.resize(holder, (320, 240))
        canvas[112:368, 320:576] = cv2.resize(guardian, (256, 256))
        frames.append(canvas)
    error, templates = _enroll_scene(tmp_path, world, write_scene(tmp_path / "in-arms", None, frames), frames=3)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert dict(error.trailing_metadata())["edge-reason"] == "face_changed"
    assert "more than one face" in error.details() and templates == 0


def test_enroll_with_no_face_in_view_is_a_precondition_not_an_internal_error(tmp_path, world, testdata):
    """Before, NoFaceError fell through the status mapping to INTERNAL (the code for a bug in the daemon)."""
    import numpy as np

    from edge.demo import write_scene

    scene = write_scene(tmp_path / "empty", None, [np.full((480, 640, 3), 120, np.uint8)] * 12)
    error, templates = _enroll_scene(tmp_path, world, scene, frames=3)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert dict(error.trailing_metadata())["edge-reason"] == "no_face"
    assert templates == 0


def test_prometheus_metrics_count_decisions_and_read_the_outbox(tmp_path, world, testdata, face_stage):
    import urllib.request

    from .conftest import Camera

    config = make_config(tmp_path, world.issuer)
    config = replace(config, server=replace(config.server, metrics_address="127.0.0.1:0"))
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["holder"]))
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
            with pytest.raises(grpc.RpcError):
                pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=b"short"), timeout=10)
        text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=10).read().decode()
        assert 'edge_verifications_total{decision="ALLOW",reason="OK"} 1.0' in text
        assert 'edge_rpc_failures_total{code="invalid_request",method="Verify"} 1.0' in text
        assert 'edge_build_info{python=' in text and "process_resident_memory_bytes" in text
        assert "edge_camera_up 1.0" in text and "edge_camera_skipped_frames_total 0.0" in text
        values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line and not line.startswith("#")]
        assert not [v for v in values if v.startswith("-")]  # no sentinel values
        assert "edge_outbox_pending 0.0" in text  # standalone: the caller's reply was the token's destination
        assert 'edge_stage_seconds_count{stage="liveness"} 1.0' in text
        assert world.cards["holder"][1].hex() not in text  # no card id in a label
    finally:
        daemon.stop(1.0)


def test_a_site_on_the_fused_face_model_enrolls_verifies_and_still_reads_sface_cards(tmp_path, world, testdata,
                                                                                       face_stage):
    """face.model = "sface+dlib": Enroll keeps a 256-value template under the fused id, the holder is let in
    on it at the fused threshold and another face is refused. A card enrolled on SFace alone, before the
    switch, is read on SFace's part of the fused embedding at SFace's threshold: its holder is let in, another
    face on such a card is refused. (Until 2026-12-07 every SFace card was TEMPLATE_MISMATCH at a fused gate,
    so a site could only switch by enrolling every holder again.)"""
    from edge.assembly import build_face_stage
    from edge.demo import speaker_frames, write_scene
    from edge.imageio import load_image
    from edge.security.templates import template_digest
    from edge.vision.matcher import SFACE, SFACE_DLIB

    from .conftest import Camera

    config = make_config(tmp_path / "device", world.issuer)
    config = replace(config, face=replace(config.face, model="sface+dlib"))
    camera = Camera(scene=world.scenes["holder"])
    daemon = EdgeDaemon(config, source_factory=camera)
    enroll(daemon, world, testdata, face_stage)  # the world's cards, on SFace alone as before the switch
    daemon.start()
    try:
        with connect(daemon, "operator") as operator:
            reply = pb_grpc.EnrollmentServiceStub(operator).Enroll(pb.EnrollRequest(card_id="cd" * 16, frames=5),
                                                                  timeout=60)
        assert reply.model_id == SFACE_DLIB.model_id
        template = daemon.templates.get("cd" * 16, commitment=bytes.fromhex(reply.template_sha256),
                                        model_id=reply.model_id)
        assert template.shape == (256,)
        text, card_id = world.issuer.issue(template_digest(template), site="ward-7", model_id=SFACE_DLIB.model_id)
        daemon.templates.put(card_id.hex(), template, SFACE_DLIB.model_id)
        obama = build_face_stage(config).embed_image(load_image(testdata / "faces/people/obama/obama.jpg")).vector
        other_text, other_id = world.issuer.issue(template_digest(obama), site="ward-7", model_id=SFACE_DLIB.model_id)
        daemon.templates.put(other_id.hex(), obama, SFACE_DLIB.model_id)
        live = speaker_frames(testdata)
        with connect(daemon) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            allowed = verify(stub, camera, write_scene(tmp_path / "fused-holder", text, live))
            assert names(allowed) == ("ALLOW", ["OK"])
            assert allowed.match_threshold == pytest.approx(SFACE_DLIB.threshold)
            assert allowed.match_score >= SFACE_DLIB.threshold
            impostor = verify(stub, camera, write_scene(tmp_path / "fused-other", other_text, live))
            assert names(impostor) == ("DENY", ["FACE_MISMATCH"])
            assert impostor.match_score < SFACE_DLIB.threshold
            old_card = verify(stub, camera, world.scenes["holder"])  # enrolled as SFace alone
            assert names(old_card) == ("ALLOW", ["OK"])
            assert old_card.match_threshold == pytest.approx(SFACE.threshold)
            checks = verify_token(old_card.token, daemon.key.public_key, now=time.time())["checks"]
            assert checks["model"] == SFACE.model_id and checks["face_threshold"] == pytest.approx(SFACE.threshold)
            old_other = verify(stub, camera, world.scenes["other"])  # an SFace card whose template is obama's
            assert names(old_other) == ("DENY", ["FACE_MISMATCH"])
            assert old_other.match_score < SFACE.threshold
    finally:
        daemon.stop(1.0)
