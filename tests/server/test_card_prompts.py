"""The gate tells a person why their card does not scan (issue 14): the RETRY carries the advice."""

from __future__ import annotations

import cv2
import pytest
from msgspec.structs import replace

from edge.qr.advice import GLARE
from tests.qr.test_advice import phone

from .conftest import Camera, EdgeDaemon, connect, make_config


@pytest.mark.slow
def test_a_session_without_a_readable_card_says_what_to_do(tmp_path, world, testdata, face_stage):
    """The gate's RETRY CARD_NOT_FOUND carries the prompt (glare makes this code unreadable)."""
    import os

    from edge.proto_gen.edge.v1 import edge_pb2 as pb
    from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc

    scene = tmp_path / "glare"
    scene.mkdir()
    for index in range(12):
        cv2.imwrite(str(scene / f"{index:04d}.png"), cv2.cvtColor(phone(glare=True), cv2.COLOR_GRAY2BGR))
    config = make_config(tmp_path / "device", world.issuer)
    config = replace(config, site=replace(config.site, card_timeout_s=1.0))
    daemon = EdgeDaemon(config, source_factory=Camera(scene=scene))
    daemon.start()
    try:
        with connect(daemon) as channel:
            reply = pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=os.urandom(16)),
                                                                    timeout=30)
        assert pb.Decision.Name(reply.decision) == "RETRY" and list(reply.prompts) == [GLARE]
    finally:
        daemon.stop(1.0)
