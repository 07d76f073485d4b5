"""A vaccination record reaches the registry exactly once through a registry outage and a kill -9 of the
device (issue 12), on both storage backends: real registry and device processes, mutual TLS."""

from __future__ import annotations

import os
import time

import pytest

from edge.demo import HOLDER_PORTRAIT
from edge.imageio import load_image
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from registry.storage import open_storage

from .conftest import device_channel, device_site
from .test_store_and_forward import device_info, wait_for

pytestmark = pytest.mark.slow


def test_a_record_made_while_the_registry_is_down_arrives_once_after_a_kill9(tmp_path, db_url, pki, testdata,
                                                                               face_stage):
    template = face_stage.embed_image(load_image(testdata / HOLDER_PORTRAIT)).vector.astype("<f4")
    site = device_site(tmp_path, db_url, pki, testdata, template, card_type="vaccination_appointment",
                       holder=b"\x07" * 16, age_band="minor", age_band_until=int(time.time()) + 365 * 86400,
                       registry="delivery_max_backoff_s = 1")
    registry, card, device = site.registry, site.card, site.device(tmp_path)
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
