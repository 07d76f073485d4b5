"""The registry from a compromised device's seat, and its lifecycle operations (issue 10, findings 2, 7, 8, 9),
on both storage backends over mutual TLS.

Before the fix a device could upload any bytes as any card's template (a 3-byte one stopped every device's
sync), a token with one bad claim failed the whole call with UNKNOWN and leaked exception text, site and
audience went unchecked, and token ids were global, so one device could squat another's.
"""

from __future__ import annotations

import json
import os
import time

import grpc
import numpy as np
import pytest

from edge.errors import RegistryUnavailable
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from edge.security.keys import DeviceKey
from edge.security.sealing import load_or_create_x25519, raw_public, seal
from edge.security.tokens import CLAIM_REASONS, CLAIM_SEQUENCE
from registry.service import RegistryServer, RegistryState

from .conftest import admin_stub, register
from .test_ingest_rules import device_transport, issue_for, make_token, unit_template

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tls_registry, tmp_path, pki):
    state, port = tls_registry
    admin = admin_stub(port, pki)
    register(admin, "dev-a", tmp_path / "a", "ward-7")
    register(admin, "dev-b", tmp_path / "b", "ward-9")
    return state, port, admin


def store(state, transport, card_id: str, data: bytes, model: str = "sface-2021dec-fp32") -> grpc.StatusCode | None:
    try:
        transport.store_template(card_id, seal(state.template_public_key, data, card_id.encode()), model)
        return None
    except Exception as exc:  # RegistryUnavailable(registry_refused) wraps the status
        cause = exc.__cause__
        return cause.code() if isinstance(cause, grpc.RpcError) else None


def test_a_device_cannot_plant_templates(site, pki, tmp_path):
    state, port, admin = site
    a = device_transport(port, pki, "dev-a")
    good = unit_template(3)
    mine = issue_for(admin, good, site="ward-7")
    theirs = issue_for(admin, unit_template(4), site="ward-9")
    assert store(state, a, mine, b"\x00\x01\x02") == grpc.StatusCode.INVALID_ARGUMENT  # 3 bytes
    assert store(state, a, mine, np.full(128, np.nan, "<f4").tobytes()) == grpc.StatusCode.INVALID_ARGUMENT
    assert store(state, a, mine, (good * 3).tobytes()) == grpc.StatusCode.INVALID_ARGUMENT  # not unit-norm
    assert store(state, a, mine, unit_template(5).tobytes()) == grpc.StatusCode.FAILED_PRECONDITION  # not committed
    assert store(state, a, theirs, unit_template(4).tobytes()) == grpc.StatusCode.PERMISSION_DENIED  # other site
    assert store(state, a, "ab" * 16, good.tobytes()) == grpc.StatusCode.NOT_FOUND  # never issued
    assert store(state, a, "X" * 10_000, good.tobytes()) == grpc.StatusCode.INVALID_ARGUMENT
    big = seal(state.template_public_key, b"\x00" * 1_000_000, mine.encode())
    with pytest.raises(Exception) as e:
        a.store_template(mine, big, "sface-2021dec-fp32")
    assert e.value.__cause__.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert store(state, a, mine, good.tobytes()) is None  # the committed template is accepted
    [(card_id, _, _)] = a.templates("dev-a").templates  # and the site's sync is whole
    assert card_id == mine and state.storage.templates_for_site("ward-9") == []


def test_fused_templates_are_checked_as_their_model_says(site, pki, tmp_path):
    """face.model = "sface+dlib": 256 values under its own id; the registry holds such a site to that layout."""
    from edge.vision.matcher import SFACE_DLIB

    state, port, admin = site
    a = device_transport(port, pki, "dev-a")
    dlib = np.random.default_rng(6).normal(size=128).astype("<f4")
    fused = np.concatenate([unit_template(6), 1.4 * dlib / np.linalg.norm(dlib)]).astype("<f4")
    card = issue_for(admin, fused, model_id=SFACE_DLIB.model_id)
    assert store(state, a, card, fused[:128].tobytes(), SFACE_DLIB.model_id) == grpc.StatusCode.INVALID_ARGUMENT
    assert store(state, a, card, fused.tobytes(), "arcface-r100") == grpc.StatusCode.INVALID_ARGUMENT  # unknown
    assert store(state, a, card, fused.tobytes()) == grpc.StatusCode.INVALID_ARGUMENT  # 256 values as SFace's
    assert store(state, a, card, fused.tobytes(), SFACE_DLIB.model_id) is None
    [(card_id, _, model_id)] = a.templates("dev-a").templates
    assert card_id == card and model_id == SFACE_DLIB.model_id


def test_one_bad_token_never_fails_the_batch_and_no_exception_text_leaks(site, pki, tmp_path):
    state, port, _ = site
    key = DeviceKey.load_or_create(tmp_path / "a")
    a = device_transport(port, pki, "dev-a")
    good = make_token(key, "dev-a")
    bad = {
        "string sequence": make_token(key, "dev-a", claims={CLAIM_SEQUENCE: "seven"}),
        "huge sequence": make_token(key, "dev-a", claims={CLAIM_SEQUENCE: 2**64}),
        "reasons as text": make_token(key, "dev-a", claims={CLAIM_REASONS: "OK"}),
        "other audience": make_token(key, "dev-a", claims={3: "another-registry"}),
        "other site": make_token(key, "dev-a", site="ward-9"),
        "exp before iat": make_token(key, "dev-a", claims={4: 5}),
        "3 MB": good + b"\x00" * 3_000_000,
    }
    results = a.ingest([*bad.values(), good])
    got = {name: (r.status, r.reason) for name, r in zip([*bad, "good"], results, strict=True)}
    assert got == {"string sequence": ("rejected", "bad_claims"), "huge sequence": ("rejected", "bad_claims"),
                   "reasons as text": ("rejected", "bad_claims"), "other audience": ("rejected", "wrong_audience"),
                   "other site": ("rejected", "wrong_site"), "exp before iat": ("rejected", "bad_claims"),
                   "3 MB": ("rejected", "too_large"), "good": ("stored", "")}
    assert all(" " not in r.reason for r in results)  # codes, never exception text
    assert state.storage.token_count() == 1


def test_token_ids_are_unique_per_device_so_none_can_be_squatted(site, pki, tmp_path):
    state, port, admin = site
    register(admin, "dev-b", tmp_path / "b2", "ward-7")  # same site as dev-a
    cti = os.urandom(16)
    squat = make_token(DeviceKey.load_or_create(tmp_path / "b2"), "dev-b", claims={7: cti})
    victim = make_token(DeviceKey.load_or_create(tmp_path / "a"), "dev-a", claims={7: cti})
    assert device_transport(port, pki, "dev-b").ingest([squat])[0].status == "stored"
    assert device_transport(port, pki, "dev-a").ingest([victim])[0].status == "stored"
    assert state.storage.token_count() == 2


def test_revoke_card_reaches_the_revocation_list(site, pki, tmp_path):
    from edge.credential.trust import RevocationList

    state, port, admin = site
    a = device_transport(port, pki, "dev-a")
    version = a.revocations()[0]
    card_id = issue_for(admin, unit_template(8))
    reply = admin.RevokeCard(rpb.RevokeCardRequest(card_id=card_id, reason="lost phone"), timeout=10)
    assert reply.revocation_list_version == version + 1 and not reply.already_revoked
    again = admin.RevokeCard(rpb.RevokeCardRequest(card_id=card_id), timeout=10)
    assert again.already_revoked and again.revocation_list_version == version + 1
    new_version, body = a.revocations()
    assert new_version == version + 1
    assert RevocationList.from_json(json.loads(body)).is_revoked(bytes.fromhex(card_id))
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "dev-a.key").read_bytes(),
                                         (pki / "dev-a.pem").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "registry")]
                             ) as channel:
        for method, request in (("RevokeCard", rpb.RevokeCardRequest(card_id=card_id)),  # a device may not revoke
                                ("ReissueLists", rpb.ReissueListsRequest())):  # nor re-issue the lists
            with pytest.raises(grpc.RpcError) as e:
                getattr(rpb_grpc.RegistryStub(channel), method)(request, timeout=10)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
    assert a.revocations()[0] == version + 1  # nothing moved


def test_an_escort_permit_cannot_be_minted_outside_an_admission(site):
    """One escort per admitted patient, ended at discharge (docs/ESCORT.md): IssueCard minted an escort permit
    for a year with no admission behind it, which no discharge would ever end."""
    _, _, admin = site
    with pytest.raises(grpc.RpcError) as e:
        admin.IssueCard(rpb.IssueCardRequest(card_type="escort_permit", site="ward-7", ward="paediatrics",
                                             template_sha256=b"\x01" * 32), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(e.value.trailing_metadata())["edge-reason"] == "escort_needs_admission"


def test_suspend_retire_and_rotate_a_device(site, pki, tmp_path):
    state, port, admin = site
    a = device_transport(port, pki, "dev-a")
    old_key = DeviceKey.load_or_create(tmp_path / "a")
    before = make_token(old_key, "dev-a", now=time.time() - 60)
    admin.SetDeviceState(rpb.SetDeviceStateRequest(device_id="dev-a", state=rpb.SUSPENDED), timeout=10)
    with pytest.raises(Exception) as e:
        a.trust_list()
    assert e.value.__cause__.code() == grpc.StatusCode.PERMISSION_DENIED  # its certificate is refused
    admin.SetDeviceState(rpb.SetDeviceStateRequest(device_id="dev-a", state=rpb.ACTIVE), timeout=10)
    assert a.trust_list()[0] >= 1

    new_key = DeviceKey.load_or_create(tmp_path / "a-new")
    admin.RotateDeviceKey(rpb.RotateDeviceKeyRequest(device_id="dev-a", signing_key=new_key.public_raw,
                                                     encryption_key=raw_public(load_or_create_x25519(
                                                         tmp_path / "a-new").public_key())), timeout=10)
    after_rotation_old = make_token(old_key, "dev-a", now=time.time() + 1)
    after_rotation_new = make_token(new_key, "dev-a")
    results = a.ingest([before, after_rotation_old, after_rotation_new])
    assert [(r.status, r.reason) for r in results] == [("stored", ""), ("rejected", "unknown_key"), ("stored", "")]

    queued = make_token(new_key, "dev-a", now=time.time() - 5)  # signed before retirement, still in its outbox
    retired = admin.SetDeviceState(rpb.SetDeviceStateRequest(device_id="dev-a", state=rpb.RETIRED), timeout=10)
    assert retired.state == rpb.RETIRED and retired.since > 0
    with pytest.raises(RegistryUnavailable) as refused:
        a.ingest([queued])  # the retired device itself is refused
    assert refused.value.__cause__.code() == grpc.StatusCode.PERMISSION_DENIED
    late = make_token(new_key, "dev-a", now=time.time() + 2)
    relayed = state.storage  # an operator relays the retired board's outbox through the admin identity
    from registry.ingest import ingest_batch

    outcomes = ingest_batch(relayed, [queued, late], peer_device=None)
    assert [(o.status, o.reason) for o in outcomes] == [("stored", ""), ("rejected", "device_inactive")]
    with pytest.raises(grpc.RpcError) as e2:
        admin.SetDeviceState(rpb.SetDeviceStateRequest(device_id="dev-a", state=rpb.ACTIVE), timeout=10)
    assert e2.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # retired stays retired
    with pytest.raises(grpc.RpcError) as e3:  # ... also through registering the same id again
        admin.RegisterDevice(rpb.RegisterDeviceRequest(device_id="dev-a", signing_key=new_key.public_raw,
                                                       encryption_key=b"\x01" * 32, site="ward-7"), timeout=10)
    assert e3.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert state.storage.device("dev-a").state == "retired"
    assert [(o.status, o.reason) for o in ingest_batch(relayed, [late], peer_device=None)] == [
        ("rejected", "device_inactive")]


def test_a_board_with_another_boards_keys_is_not_registered(site, tmp_path):
    """One SD card prepared and started once, then cloned for the ward's gates: every gate holds the same keys.
    Each could sign tokens as the others and open the templates sealed to them, and retiring one (lost,
    stolen) would leave its key alive in the rest. The registry registered them all."""
    from .test_escort import refusal

    _, _, admin = site

    def keys(folder):
        return (DeviceKey.load_or_create(tmp_path / folder).public_raw,
                raw_public(load_or_create_x25519(tmp_path / folder).public_key()))

    a_signing, a_encryption = keys("a")  # dev-a's own, registered by the fixture
    c_signing, c_encryption = keys("c")

    def register_as(device_id, signing, encryption):
        return admin.RegisterDevice(rpb.RegisterDeviceRequest(device_id=device_id, signing_key=signing,
                                                              encryption_key=encryption, site="ward-7"), timeout=10)

    assert refusal(lambda: register_as("dev-c", a_signing, a_encryption)) == ("FAILED_PRECONDITION", "key_in_use")
    assert refusal(lambda: register_as("dev-c", c_signing, a_encryption)) == ("FAILED_PRECONDITION", "key_in_use")
    with pytest.raises(grpc.RpcError) as e:
        register_as("dev-c", a_signing, c_encryption)
    assert "dev-a" in e.value.details() and "keys/" in e.value.details()
    register_as("dev-a", a_signing, a_encryption)  # registering a board again with its own keys stays allowed
    register_as("dev-c", c_signing, c_encryption)
    rotate = rpb.RotateDeviceKeyRequest(device_id="dev-c", signing_key=a_signing, encryption_key=c_encryption)
    assert refusal(lambda: admin.RotateDeviceKey(rotate, timeout=10)) == ("FAILED_PRECONDITION", "key_in_use")
    new_signing, new_encryption = keys("a-new")  # dev-a rotates; its old key is still its own
    admin.RotateDeviceKey(rpb.RotateDeviceKeyRequest(device_id="dev-a", signing_key=new_signing,
                                                     encryption_key=new_encryption), timeout=10)
    assert refusal(lambda: register_as("dev-d", a_signing, keys("d")[1])) == ("FAILED_PRECONDITION", "key_in_use")


def test_an_operator_lists_the_devices_and_sees_which_are_silent(site, pki, tmp_path):
    """Fifty gates and no way to list them: which one stopped calling, whose certificate ends next."""
    from cryptography import x509

    state, port, admin = site
    device_transport(port, pki, "dev-a").trust_list()
    listed = {d.device_id: d for d in admin.ListDevices(rpb.ListDevicesRequest(), timeout=10).devices}
    assert set(listed) == {"dev-a", "dev-b"}
    a, b = listed["dev-a"], listed["dev-b"]
    assert (a.site, a.state, b.site) == ("ward-7", rpb.ACTIVE, "ward-9")
    assert time.time() - 60 < a.last_seen <= time.time() and b.last_seen == 0  # dev-b never called
    cert = x509.load_pem_x509_certificate((pki / "dev-a.pem").read_bytes())
    assert a.certificate_not_after == cert.not_valid_after_utc.timestamp() and b.certificate_not_after == 0
    assert a.key_id == DeviceKey.load_or_create(tmp_path / "a").key_id.hex()  # the key it registered
    assert [d.device_id for d in admin.ListDevices(rpb.ListDevicesRequest(site="ward-9"), timeout=10).devices] == \
        ["dev-b"]
    with pytest.raises(grpc.RpcError) as e:  # a device's certificate lists nothing
        rpb_grpc.RegistryStub(device_transport(port, pki, "dev-a")._channel).ListDevices(
            rpb.ListDevicesRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_plaintext_registry_never_grants_admin_and_stays_on_loopback(tmp_path):
    from registry.storage import SQLiteStorage

    state = RegistryState.open(SQLiteStorage(tmp_path / "r.sqlite"), tmp_path / "state")
    with pytest.raises(ValueError):
        RegistryServer(state, tls=None, allow_plaintext=True).start("0.0.0.0:0")
    server = RegistryServer(state, tls=None, allow_plaintext=True)
    port = server.start("127.0.0.1:0")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as e:
            rpb_grpc.RegistryStub(channel).IssueCard(rpb.IssueCardRequest(card_type="health_card", site="x"),
                                                     metadata=(("x-edge-identity", "admin"),), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(0.2)
