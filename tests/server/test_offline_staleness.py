"""With the registry unreachable past the staleness bound, the site policy decides: deny, or allow with a
flag in the token."""

from __future__ import annotations

import os
import time

import pytest
from msgspec.structs import replace

from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.tokens import verify_token

from .conftest import Camera, EdgeDaemon, connect, enroll, make_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("policy", ["deny", "allow_flagged"])
def test_stale_cache_follows_the_site_policy(tmp_path, world, testdata, face_stage, policy):
    config = make_config(tmp_path, world.issuer)
    config = replace(config, registry=replace(
        config.registry, address="127.0.0.1:1", plaintext=True, staleness_s=60.0, stale_policy=policy,
        sync_interval_s=3600.0))
    camera = Camera(scene=world.scenes["holder"])
    daemon = EdgeDaemon(config, source_factory=camera)  # never synced: the cache is older than 60 s
    enroll(daemon, world, testdata, face_stage)
    daemon.start()
    try:
        with connect(daemon) as channel:
            reply = pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
            info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
        claims = verify_token(reply.token, daemon.key.public_key, now=time.time())
        if policy == "deny":
            assert (reply.decision, list(reply.reasons)) == (pb.DENY, [pb.DATA_STALE])
        else:
            assert reply.decision == pb.ALLOW and claims["checks"]["stale_data"] is True
        assert info.last_sync_age_s > 60 and info.outbox_pending == 1  # queued, the registry is unreachable
    finally:
        daemon.stop(1.0)
