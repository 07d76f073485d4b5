"""A vaccination record reaches the registry exactly once through a registry outage and a kill -9 of the
device (issue 12), on both storage backends: real registry and device processes, mutual TLS."""

from __future__ import annotations

import os

import pytest

from edge.demo import HOLDER_PORTRAIT, speaker_frames, write_scene
from edge.imageio import load_image
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from registry.storage import open_storage

from .conftest import (
    Process,
    admin_stub,
    device_channel,
    free_port,
    issue_card_with_template,
    register,
    registry_process,
)
from .test_store_and_forward import device_info, wait_for

pytestmark = pytest.mark.slow


def test_a_record_made_while_the_registry_is_down_arrives_once_after_a_kill9(tmp_path, db_url, pki, testdata,
                                                                               face_stage):
    rport = free_port()
    registry = registry_process(tmp_path, db_url, pki, rport)
    registry.start()
    admin = admin_stub(rport, pki)
    data = tmp_path / "device"
    register(admin, "dev-a", data / "keys", "ward-7")
    template = face_stage.embed_image(load_image(testdata / HOLDER_PORTRAIT)).vector.astype("<f4")
    card = issue_card_with_template(admin, tmp_path, template, card_type="vaccination_appointment", site="ward-7",
                                    age_band="minor")
    scene = write_scene(tmp_path / "scene", card.qr_text, speaker_frames(testdata))
    config = tmp_path / "device.toml"
    config.write_text(f"""
[device]
id = "dev-a"
data_dir = "{data}"
[site]
id = "ward-7"
require_challenge = false
[camera]
source = "replay:{scene}"
[server]
address = "127.0.0.1:0"
tls_dir = "{pki}"
server_cert = "edge-device"
[registry]
address = "127.0.0.1:{rport}"
tls_dir = "{pki}"
sync_interval_s = 1
delivery_idle_s = 0.2
delivery_max_backoff_s = 1
""")
    device = Process(["serve", "--config", str(config)], tmp_path / "device.port", tmp_path / "device.log")
    try:
        port = device.start()
        wait_for(lambda: 0 <= device_info(port, pki).last_sync_age_s < 30, what="first sync")
        registry.kill9()  # the network goes down before the vaccination
        with device_channel(port, pki) as channel:
            stub = pb_grpc.VerificationServiceStub(channel)
            allow = stub.Verify(pb.VerifyRequest(nonce=os.urandom(16)), timeout=60)
            assert allow.decision == pb.ALLOW, list(allow.reasons)
            record = stub.RecordVaccination(pb.VaccinationRecordRequest(
                verification_token_id=allow.token_id, vaccine_code="141", lot_number="FLU-77", expiry="2099-01-31",
                dose_number=1, series_doses=1, route="IM", body_site="RD", performer_staff_id="nurse-3"), timeout=30)
        device.kill9()  # and the board loses power with both tokens queued
        registry.start()
        port = device.start()
        wait_for(lambda: device_info(port, pki).outbox_pending == 0, timeout=90, what="queue drained")
        storage = open_storage(db_url)
        try:
            resource = storage.immunization_for(card.card_id)
            assert resource is not None and resource["id"] == record.record_id
            assert sorted(storage.token_ids()) == sorted([allow.token_id, record.record_id])  # once each
        finally:
            storage.close()
    finally:
        device.kill9()
        registry.stop()
