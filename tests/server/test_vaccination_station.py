"""A vaccination station (issue 12): a guardian acts for a child through a delegation, per age band, and the
vaccination is recorded once, signed and bound to the ALLOW it follows. A real daemon over mutual TLS; the
station's app sends the card texts it scanned (the camera shows the person's face)."""

from __future__ import annotations

import os
import time

import grpc
import pytest
from msgspec.structs import replace

from edge.demo import speaker_frames, write_scene
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.templates import template_digest
from edge.security.tokens import verify_token

from .conftest import Camera, EdgeDaemon, connect, make_config

pytestmark = pytest.mark.slow
MODEL = "sface-2021dec-fp32"
SEASON = "COVID-19, mRNA, LNP-S, PF, 2024-2025 formula"


@pytest.fixture(scope="module")
def station(tmp_path_factory, world, testdata):
    """Cards of a family: an infant's appointment (no template), a 16-year-old's, an adult's; the guardian's
    delegation for the infant (the guardian's face is the recorded speaker's)."""
    issuer = world.issuer.issuer
    face = template_digest(world.holder_template)
    now = int(time.time())
    cards = {}
    for name, band in (("infant", "child"), ("teen", "minor"), ("adult", "adult"), ("other_child", "child")):
        text, card = issuer.issue(card_type="vaccination_appointment", holder=os.urandom(16), site="ward-7",
                                  template_sha256=face, model_id=MODEL, age_band=band, valid_for_s=86400)
        cards[name] = (text, card)
    for name, acts_for, valid in (("delegation", "infant", 86400), ("expired", "infant", 60),
                                  ("other", "other_child", 86400)):
        text, card = issuer.issue(card_type="delegation", holder=os.urandom(16), site="ward-7",
                                  template_sha256=face, model_id=MODEL, acts_for=cards[acts_for][1].card_id,
                                  valid_for_s=valid, now=now - (3600 if name == "expired" else 0))
        cards[name] = (text, card)
    config = make_config(tmp_path_factory.mktemp("station"), world.issuer)
    config = replace(config, card=replace(config.card, accepted_types=("vaccination_appointment", "health_card")))
    # This season's vaccine, on the site's own list (site.vaccines) beside the starting list.
    config = replace(config, site=replace(config.site, vaccines={**config.site.vaccines, "313": SEASON}))
    scene = write_scene(tmp_path_factory.mktemp("face") / "scene", None, speaker_frames(testdata))
    camera = Camera(scene=scene)
    daemon = EdgeDaemon(config, source_factory=camera)
    daemon.test_camera = camera
    for name in ("teen", "adult", "delegation", "expired", "other"):  # no template for the infant
        daemon.templates.put(cards[name][1].card_id.hex(), world.holder_template, MODEL)
    daemon.start()
    yield daemon, {k: v[0] for k, v in cards.items()}, {k: v[1].card_id.hex() for k, v in cards.items()}
    daemon.stop(1.0)


def verify(daemon, card, delegation=""):
    with connect(daemon) as channel:
        reply = pb_grpc.VerificationServiceStub(channel).Verify(pb.VerifyRequest(
            nonce=os.urandom(16), card_text=card, delegation_text=delegation), timeout=60)
    return reply, pb.Decision.Name(reply.decision), [pb.ReasonCode.Name(r) for r in reply.reasons]


def test_the_guardian_verifies_for_an_infant_and_the_token_says_so(station):
    daemon, texts, ids = station
    reply, decision, reasons = verify(daemon, texts["infant"], texts["delegation"])
    assert (decision, reasons) == ("ALLOW", ["OK"])
    claims = verify_token(reply.token, daemon.key.public_key, now=time.time())
    assert claims["sub"] == ids["infant"]  # the token is about the child's card ...
    assert claims["checks"]["guardian_acted"] == {"delegation": ids["delegation"], "guardian_card": ""}


@pytest.mark.parametrize(("card", "delegation", "reason"), [
    ("infant", None, "DELEGATION_REQUIRED"),  # a baby's face is never the check
    ("infant", "expired", "DELEGATION_EXPIRED"),
    ("infant", "other", "DELEGATION_MISMATCH"),  # a delegation for another child
    ("adult", "delegation", "DELEGATION_NOT_ACCEPTED"),  # from 18 only the holder
])
def test_delegation_rules_per_age_band(station, card, delegation, reason):
    daemon, texts, _ = station
    _, decision, reasons = verify(daemon, texts[card], texts[delegation] if delegation else "")
    assert (decision, reasons) == ("DENY", [reason])


def test_a_sixteen_year_old_verifies_alone(station):
    daemon, texts, _ = station
    assert verify(daemon, texts["teen"])[1:] == ("ALLOW", ["OK"])


def record(daemon, token_id, **fields):
    values = {"vaccine_code": "208", "lot_number": "FK1234", "expiry": "2099-12-31", "dose_number": 1,
              "series_doses": 2, "route": "IM", "body_site": "LD", "performer_staff_id": "nurse-17", **fields}
    with connect(daemon) as channel:
        return pb_grpc.VerificationServiceStub(channel).RecordVaccination(pb.VaccinationRecordRequest(
            verification_token_id=token_id, **values), timeout=30)


def refusal(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code().name, dict(e.value.trailing_metadata())["edge-reason"], e.value.details()


def test_the_vaccination_is_recorded_once_bound_to_its_allow(station):
    from edge.gate.vaccination import local_day

    daemon, texts, ids = station
    allow, decision, _ = verify(daemon, texts["infant"], texts["delegation"])
    assert decision == "ALLOW"
    assert refusal(lambda: record(daemon, allow.token_id, vaccine_code="999"))[:2] == (
        "INVALID_ARGUMENT", "vaccine_unknown")
    code, reason, message = refusal(lambda: record(daemon, allow.token_id, dose_number=3))
    assert (code, reason) == ("INVALID_ARGUMENT", "dose_out_of_series") and "series" in message
    assert refusal(lambda: record(daemon, allow.token_id, expiry="2020-01-01"))[1] == "lot_expired"
    assert refusal(lambda: record(daemon, allow.token_id, lot_number="lot with spaces"))[1] == "lot_invalid"
    assert refusal(lambda: record(daemon, "ab" * 16))[:2] == ("FAILED_PRECONDITION", "record_unbound")
    # A tablet whose clock is years behind: the person's immunization record must not be dated then.
    code, reason, message = refusal(lambda: record(daemon, allow.token_id, occurred_at=int(time.time()) - 3 * 86400))
    assert (code, reason) == ("INVALID_ARGUMENT", "occurred_before_verification") and "clock" in message
    done = record(daemon, allow.token_id, vaccine_code="313")
    claims = verify_token(done.token, daemon.key.public_key, now=time.time())
    assert claims["sub"] == ids["infant"] and claims["reasons"] == ["VACCINATION_RECORD"]
    written = claims["checks"]["record"]
    assert written["verification"] == allow.token_id and written["lot"] == "FK1234"
    assert (written["vaccine"], written["vaccine_display"]) == ("313", SEASON)  # the name the registry files
    assert written["day"] == local_day(written["occurred"], daemon.config.site.timezone)  # what the expiry meets
    again, _, _ = verify(daemon, texts["infant"], texts["delegation"])  # a second ALLOW, same appointment
    assert refusal(lambda: record(daemon, again.token_id))[:2] == ("FAILED_PRECONDITION", "appointment_used")
    assert daemon.outbox.decision_of(done.record_id) == (ids["infant"], "ALLOW")  # durable in the outbox
    # The station keeps the "recorded" mark until the appointment card ends (here in a day), not for good.
    until = daemon.parts.entries._db.execute("SELECT until FROM records WHERE appointment = ?",
                                             (ids["infant"],)).fetchone()[0]
    assert until == pytest.approx(time.time() + 86400, abs=600)


def test_simultaneous_records_for_one_appointment_sign_once(station):
    """Four station apps (or one retrying impatiently) send the record for one ALLOW at the same moment:
    one record is signed, the others are refused. Signing is slowed so that every call has passed the
    "already recorded?" check before the first one is written."""
    import threading

    daemon, texts, _ = station
    allow, decision, _ = verify(daemon, texts["teen"])
    assert decision == "ALLOW"
    outbox = daemon.parts.outbox
    real_issue = outbox.issue

    def slow_issue(*args, **kwargs):
        time.sleep(0.3)
        return real_issue(*args, **kwargs)

    outbox.issue = slow_issue
    results: list[str] = []
    try:
        def send():
            try:
                record(daemon, allow.token_id)
                results.append("signed")
            except grpc.RpcError as exc:
                results.append(dict(exc.trailing_metadata()).get("edge-reason", exc.code().name))

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        del outbox.issue
    assert sorted(results) == ["appointment_used"] * 3 + ["signed"], results


@pytest.mark.parametrize("delegation_first", [False, True])
def test_the_camera_reads_both_codes_in_either_order(station, testdata, tmp_path, delegation_first):
    """The two-code presentation at the camera: the child's card and the guardian's delegation, in either order,
    then the guardian's face."""
    import cv2

    from edge.demo import phone_qr_frame

    daemon, texts, _ = station
    folder = tmp_path / "two-codes"
    folder.mkdir()
    order = ["delegation", "infant"] if delegation_first else ["infant", "delegation"]
    frames = [phone_qr_frame(texts[order[0]], seed=i) for i in range(3)]
    frames += [phone_qr_frame(texts[order[1]], seed=i) for i in range(3)]
    frames += speaker_frames(testdata)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    previous, daemon.test_camera.scene = daemon.test_camera.scene, folder
    try:
        with connect(daemon) as channel:
            start = pb.SessionClientMessage(start=pb.VerifyRequest(nonce=os.urandom(16)))
            messages = list(pb_grpc.VerificationServiceStub(channel).VerifySession(iter([start]), timeout=60))
    finally:
        daemon.test_camera.scene = previous
    reply = messages[-1].result
    assert pb.Decision.Name(reply.decision) == "ALLOW", list(reply.reasons)
    # The gate says which code comes next (before, it waited for the second code without a word, and a
    # guardian who did not know to show it was refused: DELEGATION_REQUIRED).
    prompts = [m.prompt for m in messages if m.WhichOneof("kind") == "prompt"]
    assert prompts[0] == ("Now show the child's card" if delegation_first else "Now show the guardian's delegation")
    claims = verify_token(reply.token, daemon.key.public_key, now=time.time())
    assert "guardian_acted" in claims["checks"]
