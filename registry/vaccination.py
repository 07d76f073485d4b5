"""Vaccination records at the registry: a device-signed record becomes an HL7 FHIR Immunization, once.

A record arrives as a token of its own (reason VACCINATION_RECORD) in the device's outbox, after the ALLOW it
refers to. The registry checks that the verification it names is an ALLOW of the same device for the same
appointment card, that the record's fields are in range, and that the appointment was not used before
(``appointment_used``); it then stores the record as a FHIR Immunization (fhir.resources, R4B: the R4
Immunization with the 4.3 technical corrections; validated by the model on every store) in the token's
transaction. ``history_bundle`` returns a person's immunizations as a FHIR searchset Bundle.

The FHIR resource names the patient by the card's holder pseudonym only (an identifier, no name, no date of
birth); the performer by the staff id the station sent.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from edge.gate.vaccination import ROUTES, SITES, occurred_problem, record_problem, vaccine_name
from registry.storage import Storage, StoredToken, TokenRow


def immunization(record: dict[str, Any], *, holder: str, appointment: str, device_id: str,
                 record_id: str) -> dict[str, Any]:
    """The FHIR Immunization for a checked record, validated by fhir.resources; returned as JSON data."""
    from fhir.resources.R4B.immunization import Immunization

    occurred = dt.datetime.fromtimestamp(record["occurred"], dt.UTC).isoformat()
    resource = Immunization.model_validate({
        "resourceType": "Immunization", "id": record_id, "status": "completed",
        "identifier": [{"system": "urn:edge:vaccination-record", "value": record_id},
                       {"system": "urn:edge:appointment", "value": appointment}],
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": record["vaccine"],
                                    "display": vaccine_name(record)}]},
        "patient": {"identifier": {"system": "urn:edge:holder", "value": holder}},
        "occurrenceDateTime": occurred, "recorded": occurred, "primarySource": True,
        "lotNumber": record["lot"], "expirationDate": record["expiry"],
        "site": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActSite", "code": record["site"],
                             "display": SITES[record["site"]]}]},
        "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
                              "code": record["route"], "display": ROUTES[record["route"]]}]},
        "performer": [{"actor": {"identifier": {"system": "urn:edge:staff", "value": record["performer"]}}}],
        "protocolApplied": [{"doseNumberPositiveInt": record["dose"], "seriesDosesPositiveInt": record["series"]}],
        "location": {"identifier": {"system": "urn:edge:device", "value": device_id}},
    })
    return json.loads(resource.model_dump_json(exclude_none=True))


def record_link(storage: Storage, named: dict[str, Any], *, device_id: str, site: str, record_id: str,
                batch: dict[str, TokenRow], now: float) -> dict[str, Any] | str:
    """Check a VACCINATION_RECORD token: its record, the verification it follows, the appointment."""
    checks = named.get("checks")
    record = checks.get("record") if isinstance(checks, dict) else None
    problem = record_problem(record, now=now)
    if problem is not None:
        return problem
    assert isinstance(record, dict)
    verified = record.get("verification")
    earlier: StoredToken | None = batch.get(verified) if isinstance(verified, str) else None
    if earlier is None and isinstance(verified, str):
        earlier = storage.token(device_id, verified)
    if earlier is None or earlier.decision != "ALLOW" or earlier.card_id != named["sub"] \
            or "VACCINATION_RECORD" in earlier.reasons:
        return "record_unbound"
    problem = occurred_problem(record, earlier.iat)
    if problem is not None:
        return problem
    appointment = storage.card(named["sub"])
    if appointment is None or appointment.card_type != "vaccination_appointment" or appointment.site != site:
        return "record_unbound"
    if storage.immunization_for(named["sub"]) is not None or any(
            row.record is not None and row.card_id == named["sub"] for row in batch.values()):
        return "appointment_used"
    holder = appointment.holder or appointment.card_id
    try:
        resource = immunization(record, holder=holder, appointment=named["sub"], device_id=device_id,
                                record_id=record_id)
    except ValueError:  # pydantic's ValidationError: a field FHIR does not accept
        return "record_invalid"
    return {"holder": holder, "resource": resource}


def history_bundle(storage: Storage, holder: str) -> dict[str, Any]:
    """A person's immunizations (by holder pseudonym) as a FHIR searchset Bundle, validated."""
    from fhir.resources.R4B.bundle import Bundle

    entries = [{"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource, "search": {"mode": "match"}}
               for resource in storage.immunizations_of(holder)]
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                                    "entry": entries})
    return json.loads(bundle.model_dump_json(exclude_none=True))
