"""SIGTERM during a session (real `edge serve` process) and the no-egress proof over every outbound path."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest

from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.templates import template_digest

from .conftest import connect, write_config

pytestmark = pytest.mark.slow


def test_sigterm_lets_the_inflight_session_finish(tmp_path, world, face_stage, testdata):
    from edge.security.templates import TemplateStore
    from edge.server.daemon import MODEL_ID

    data = tmp_path / "device"
    store = TemplateStore(data / "templates.sqlite", data / "keys")
    store.put(world.cards["holder"][1].hex(), world.holder_template, MODEL_ID)
    store.close()
    config = write_config(tmp_path, world, data=data, device_id="edge-sigterm", realtime=True, grace_s=20)
    port_file = tmp_path / "port"
    log_file = tmp_path / "edge.log"  # a file, not a pipe: a pipe nobody reads blocks the daemon once full
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--config", str(config), "--port-file",
                             str(port_file)], stderr=log_file.open("w"), text=True)
    try:
        deadline = time.time() + 60
        while not port_file.exists() or not port_file.read_text():
            assert proc.poll() is None, log_file.read_text()
            assert time.time() < deadline
            time.sleep(0.1)
        port = int(port_file.read_text())
        with connect(port) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            start = pb.SessionClientMessage(start=pb.VerifyRequest(nonce=os.urandom(16)))
            stream = stub.VerifySession(iter([start]), timeout=60)
            first = next(stream)  # the session has begun (it reads 1.6 s of video in real time)
            assert first.WhichOneof("kind") == "progress"
            proc.send_signal(signal.SIGTERM)
            rest = list(stream)
        assert rest[-1].WhichOneof("kind") == "result"
        assert rest[-1].result.decision == pb.ALLOW
        try:
            assert proc.wait(30) == 0, log_file.read_text()[-2000:]
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon did not exit within 30 s of the session's end:\n{log_file.read_text()[-2000:]}")
        log = log_file.read_text()
        assert '"shutting down"' in log and '"stopped"' in log
    finally:
        if proc.poll() is None:
            proc.kill()


class _Capture(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Records the serialized bytes of every message the device sends back to a caller."""

    def __init__(self):
        self.messages: list[tuple[str, bytes]] = []

    def _record(self, method, response):
        self.messages.append((method, response.SerializeToString()))

    def intercept_unary_unary(self, continuation, details, request):
        outcome = continuation(details, request)
        if outcome.exception() is None:
            self._record(details.method, outcome.result())
        return outcome

    def intercept_unary_stream(self, continuation, details, request):
        for response in continuation(details, request):
            self._record(details.method, response)
            yield response

    def intercept_stream_stream(self, continuation, details, request_iterator):
        for response in continuation(details, request_iterator):
            self._record(details.method, response)
            yield response


def _forbidden_fragments(vectors: list[np.ndarray]) -> list[bytes]:
    """16-byte windows of each embedding as float32 (either byte order) and as float64."""
    fragments = []
    for vector in vectors:
        for raw in (vector.astype("<f4").tobytes(), vector.astype(">f4").tobytes(), vector.astype("<f8").tobytes()):
            fragments += [raw[i:i + 16] for i in range(0, len(raw) - 16, 16)]
    return fragments


IMAGE_MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM6", b"RIFF", b"GIF8"]


def test_no_image_crop_or_embedding_leaves_the_device(daemon, camera, world, face_stage, testdata):
    from edge.demo import speaker_frames

    capture = _Capture()
    channel = grpc.intercept_channel(connect(daemon), capture)
    verify = pb_grpc.VerificationServiceStub(channel)
    for scene in ("holder", "other", "photo", "expired"):
        camera.scene = world.scenes[scene]
        verify.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
    camera.scene = world.scenes["holder"]
    list(verify.VerifySession(iter([pb.SessionClientMessage(start=pb.VerifyRequest(nonce=os.urandom(16)))]),
                              timeout=60))
    pb_grpc.CardServiceStub(channel).DecodeCard(pb.DecodeCardRequest(card_text=world.cards["holder"][0]))
    pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest())
    channel.close()

    # Every embedding the device could have computed: the templates and the live faces it saw.
    frames = speaker_frames(testdata)[::5]
    live_vectors = [face_stage.embed_face(f, max(face_stage.detector.detect(f), key=lambda x: x.area)).vector
                    for f in frames if face_stage.detector.detect(f)]
    fragments = _forbidden_fragments([world.holder_template, *live_vectors])
    outbound = [(m, data) for m, data in capture.messages]
    outbound += [("outbox", token) for token in daemon.outbox.all_tokens()]  # registry-bound
    assert len(capture.messages) >= 8 and len(outbound) > len(capture.messages)
    for method, data in outbound:
        assert len(data) < 4096, (method, len(data))  # a 112x112 crop alone is 37 KB raw
        for magic in IMAGE_MAGIC:
            assert magic not in data, (method, magic)
        for fragment in fragments:
            assert fragment not in data, method
        # No run of 64+ float32 values in a plausible embedding range (|x| < 1, not all tiny).
        floats = re.findall(rb"(?:[\x00-\xff]{3}[\x3c-\x3f\xbc-\xbf]){64,}", data)
        assert not floats, method
    # The template digest (a commitment, not the template) may appear; the template itself may not.
    assert template_digest(world.holder_template) not in world.holder_template.tobytes()
