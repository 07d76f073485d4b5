"""Registry storage: one SQL layer over SQLite (default, embedded) and PostgreSQL (production).

Statements are written once with ``?`` placeholders and portable types; the PostgreSQL backend rewrites
placeholders to ``%s`` and BLOB to BYTEA. Token storage is idempotent on the token id (the token's cti):
``INSERT ... ON CONFLICT DO NOTHING`` (SQLite >= 3.24, PostgreSQL >= 9.5), so a redelivered token is
stored exactly once whatever the interleaving.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.refusals import Refused

log = logging.getLogger(__name__)

#: Schema steps, applied in order; ``schema_version`` records how many ran (one transaction each). Step 1 is
#: the first release's schema (IF NOT EXISTS: databases made before versioning adopt it unchanged).
MIGRATIONS: list[list[str]] = [
    ["CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, signing_key BLOB NOT NULL, "
     "encryption_key BLOB NOT NULL, site TEXT NOT NULL, registered DOUBLE PRECISION NOT NULL)",
     "CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, card_id TEXT NOT NULL, "
     "iat BIGINT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL, sequence BIGINT NOT NULL, site TEXT, "
     "gate TEXT, token BLOB NOT NULL, received DOUBLE PRECISION NOT NULL)",
     "CREATE INDEX IF NOT EXISTS tokens_by_card ON tokens (card_id, iat)",
     "CREATE TABLE IF NOT EXISTS templates (card_id TEXT PRIMARY KEY, sealed BLOB NOT NULL, model_id TEXT NOT NULL, "
     "commitment BLOB NOT NULL, site TEXT NOT NULL)",
     "CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY, version BIGINT NOT NULL, body TEXT NOT NULL)"],
    # 2: device lifecycle (state, key history), the cards the registry issued (site and face commitment),
    #    revocation records, and token ids unique per device (one device cannot squat another's cti).
    ["ALTER TABLE devices ADD COLUMN state TEXT NOT NULL DEFAULT 'active'",
     "ALTER TABLE devices ADD COLUMN state_since DOUBLE PRECISION",
     "CREATE TABLE device_keys (device_id TEXT NOT NULL, key_id TEXT NOT NULL, signing_key BLOB NOT NULL, "
     "valid_from DOUBLE PRECISION NOT NULL, valid_until DOUBLE PRECISION, PRIMARY KEY (device_id, key_id))",
     "INSERT INTO device_keys (device_id, key_id, signing_key, valid_from) "
     "SELECT device_id, '', signing_key, registered FROM devices",
     "CREATE TABLE cards (card_id TEXT PRIMARY KEY, site TEXT NOT NULL, card_type TEXT NOT NULL, "
     "commitment BLOB NOT NULL, model_id TEXT NOT NULL, issued DOUBLE PRECISION NOT NULL, "
     "expires DOUBLE PRECISION NOT NULL)",
     "CREATE TABLE revoked_cards (card_id TEXT PRIMARY KEY, reason TEXT NOT NULL, revoked DOUBLE PRECISION NOT NULL)",
     "CREATE TABLE tokens_v2 (device_id TEXT NOT NULL, token_id TEXT NOT NULL, card_id TEXT NOT NULL, "
     "iat BIGINT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL, sequence BIGINT NOT NULL, site TEXT, "
     "gate TEXT, token BLOB NOT NULL, received DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, token_id))",
     "INSERT INTO tokens_v2 SELECT device_id, token_id, card_id, iat, decision, reasons, sequence, site, gate, token, "
     "received FROM tokens",
     "DROP TABLE tokens",
     "ALTER TABLE tokens_v2 RENAME TO tokens",
     "CREATE INDEX IF NOT EXISTS tokens_by_card_v2 ON tokens (card_id, iat)"],
    # 3: admissions from the hospital's system and the escort permits tied to them.
    ["CREATE TABLE admissions (patient_id TEXT PRIMARY KEY, site TEXT NOT NULL, ward TEXT NOT NULL, "
     "admitted DOUBLE PRECISION NOT NULL, expected_until DOUBLE PRECISION NOT NULL, discharged DOUBLE PRECISION)",
     "CREATE TABLE permits (card_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, site TEXT NOT NULL, "
     "ward TEXT NOT NULL, issued DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, "
     "ended DOUBLE PRECISION, end_reason TEXT)",
     "CREATE INDEX permits_by_patient ON permits (patient_id, ended)"],
    # 4: staff overrides, one per refused session of a device
    ["CREATE TABLE overrides (device_id TEXT NOT NULL, refused TEXT NOT NULL, token_id TEXT NOT NULL, "
     "staff_card TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (device_id, refused))"],
    # 5: children and guardians (age band and holder of issued cards, delegations), and vaccinations recorded
    #    as FHIR Immunization resources, one per appointment.
    ["ALTER TABLE cards ADD COLUMN holder TEXT",
     "ALTER TABLE cards ADD COLUMN age_band TEXT",
     "CREATE TABLE delegations (card_id TEXT PRIMARY KEY, child_card TEXT NOT NULL, guardian TEXT NOT NULL, "
     "valid_until DOUBLE PRECISION NOT NULL)",
     "CREATE TABLE immunizations (appointment TEXT PRIMARY KEY, holder TEXT NOT NULL, device_id TEXT NOT NULL, "
     "token_id TEXT NOT NULL, resource TEXT NOT NULL, recorded DOUBLE PRECISION NOT NULL)",
     "CREATE INDEX immunizations_by_holder ON immunizations (holder)"],
    # 6: a card (a RETRY's override) may be overridden again on a later visit (edge/gate/overrides.py): one row
    #    per override token, with its iat, instead of one per refusal
    ["CREATE TABLE overrides_v2 (device_id TEXT NOT NULL, refused TEXT NOT NULL, token_id TEXT NOT NULL, "
     "staff_card TEXT NOT NULL, reason TEXT NOT NULL, iat BIGINT NOT NULL, PRIMARY KEY (device_id, token_id))",
     "INSERT INTO overrides_v2 SELECT o.device_id, o.refused, o.token_id, o.staff_card, o.reason, "
     "COALESCE(t.iat, 0) FROM overrides o LEFT JOIN tokens t ON t.device_id = o.device_id AND t.token_id = o.token_id",
     "DROP TABLE overrides",
     "ALTER TABLE overrides_v2 RENAME TO overrides",
     "CREATE INDEX overrides_by_refusal ON overrides (device_id, refused)"],
    # 7: a version of each site's templates, raised by every change there, so a gate's sync with nothing new
    #    sends nothing ('*': the templates every site gets)
    ["CREATE TABLE template_versions (site TEXT PRIMARY KEY, version BIGINT NOT NULL)"],
    # 8: when each device last called, and when the client certificate it called with ends (ListDevices)
    ["ALTER TABLE devices ADD COLUMN last_seen DOUBLE PRECISION",
     "ALTER TABLE devices ADD COLUMN certificate_not_after DOUBLE PRECISION"],
    # 9: tokens leave after the site's retention (prune_records), oldest first
    ["CREATE INDEX tokens_by_iat ON tokens (iat)"],
    # 10: how many tokens each device signed per UTC day, checked at every delivery against the registry's
    #     daily cap (registry/ingest.py). A counter row per device and day, raised with each stored batch:
    #     an index on tokens (device_id, iat) to count them cost PostgreSQL about half again of its ingest
    #     time (measured), the counter nothing measurable.
    ["CREATE TABLE token_days (device_id TEXT NOT NULL, day BIGINT NOT NULL, tokens BIGINT NOT NULL, "
     "PRIMARY KEY (device_id, day))",
     "INSERT INTO token_days SELECT device_id, iat / 86400, COUNT(*) FROM tokens GROUP BY device_id, iat / 86400"],
]
DEVICE_STATES = ("active", "suspended", "retired")


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    signing_key: bytes
    encryption_key: bytes
    site: str
    state: str = "active"  # active | suspended | retired
    state_since: float | None = None  # unix seconds when it stopped being active


@dataclass(frozen=True)
class DeviceStatus:
    """A device as an operator lists it (ListDevices): unix seconds, None for never or unknown."""

    device_id: str
    site: str
    state: str
    state_since: float | None
    registered: float
    key_id: str
    last_seen: float | None
    certificate_not_after: float | None


@dataclass(frozen=True, kw_only=True)
class Admission:
    """A patient's stay as the hospital's system reports it: a pseudonymous id, never a name."""

    patient_id: str
    site: str
    ward: str
    admitted: float
    expected_until: float
    discharged: float | None = None


@dataclass(frozen=True, kw_only=True)
class CardRecord:
    """A card the registry issued: where it is valid and the face it commits to."""

    card_id: str
    site: str
    card_type: str
    commitment: bytes
    model_id: str
    issued: float
    expires: float
    holder: str | None = None  # hex pseudonym
    age_band: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoredToken:
    """What the registry keeps of a token besides its bytes (the audit view)."""

    token_id: str
    device_id: str
    card_id: str
    iat: int
    decision: str
    reasons: list[str]
    sequence: int
    site: str
    gate: str


@dataclass(frozen=True, kw_only=True)
class TokenRow(StoredToken):
    """A verified token ready to store (``override``: the link of a staff override token)."""

    token: bytes
    override: dict[str, str] | None = None
    record: dict[str, Any] | None = None  # a vaccination record: its FHIR resource and the holder


class DeviceRefused(Refused):
    """A registration or key rotation the registry refuses (FAILED_PRECONDITION)."""


class Storage:
    paramstyle = "qmark"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # backend hooks
    def _execute(self, sql: str, params: tuple = ()) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Several calls as one transaction, with no other thread's statements in between."""
        with self._lock, self.transaction():
            yield

    def create_schema(self) -> None:
        """Apply the missing migrations (each in its own transaction); refuse a newer database."""
        with self._lock:
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = self._execute("SELECT version FROM schema_version").fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise RuntimeError(f"registry database is at schema version {version}, newer than this release "
                                   f"({len(MIGRATIONS)})")
            for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
                with self.transaction():
                    for statement in steps:
                        self._execute(statement)
                    if number == 2:
                        self._backfill_key_ids()
                    self._execute("DELETE FROM schema_version")
                    self._execute("INSERT INTO schema_version VALUES (?)", (number,))

    def _backfill_key_ids(self) -> None:
        for device_id, key in self._execute("SELECT device_id, signing_key FROM device_keys WHERE key_id = ''"
                                            ).fetchall():
            self._execute("UPDATE device_keys SET key_id = ? WHERE device_id = ? AND key_id = ''",
                          (key_id(bytes(key)), device_id))

    def schema_version(self) -> int:
        with self._lock:
            return int(self._execute("SELECT version FROM schema_version").fetchone()[0])

    # devices
    def register_device(self, device: DeviceRecord) -> None:
        """Register (or re-register: new keys, active again) a device; its previous key stays valid for
        tokens it signed before now. A retired device id stays retired: ValueError (its replacement gets a new
        id), so a re-registration cannot bring back a board that was retired because it was lost."""
        now = time.time()
        with self._lock, self.transaction():
            current = self.device(device.device_id)
            if current is not None and current.state == "retired":
                raise DeviceRefused("device_retired", f"device {device.device_id} is retired, and retired is final; "
                                    "register the replacement board under a new device id")
            self._refuse_keys_of_another(device.device_id, device.signing_key, device.encryption_key)
            self._execute("INSERT INTO devices (device_id, signing_key, encryption_key, site, registered, state) "
                          "VALUES (?, ?, ?, ?, ?, 'active') ON CONFLICT (device_id) DO UPDATE SET "
                          "signing_key = excluded.signing_key, encryption_key = excluded.encryption_key, "
                          "site = excluded.site, state = 'active', state_since = NULL",
                          (device.device_id, device.signing_key, device.encryption_key, device.site, now))
            self._add_key(device.device_id, device.signing_key, now)

    def _add_key(self, device_id: str, signing_key: bytes, now: float) -> None:
        kid = key_id(signing_key)
        self._execute("UPDATE device_keys SET valid_until = ? WHERE device_id = ? AND key_id <> ? AND "
                      "valid_until IS NULL", (now, device_id, kid))
        self._execute("INSERT INTO device_keys VALUES (?, ?, ?, ?, NULL) ON CONFLICT (device_id, key_id) DO UPDATE "
                      "SET valid_until = NULL", (device_id, kid, signing_key, now))

    def _refuse_keys_of_another(self, device_id: str, signing_key: bytes, encryption_key: bytes) -> None:
        """DeviceRefused(key_in_use) when another device holds (or held) either key: a board whose data folder
        was copied from another's, as when one prepared SD card is cloned for a fleet. Two boards with one key
        can sign each other's tokens and open each other's templates, and ending one ends neither."""
        row = self._execute("SELECT device_id FROM device_keys WHERE key_id = ? AND device_id <> ?",
                            (key_id(signing_key), device_id)).fetchone() or \
            self._execute("SELECT device_id FROM devices WHERE encryption_key = ? AND device_id <> ?",
                          (encryption_key, device_id)).fetchone()
        if row is not None:
            raise DeviceRefused("key_in_use", f"these keys are device {row[0]}'s: was this board's SD card or data "
                                "folder copied from it? On this board, remove the data folder's keys/ and restart "
                                "the service to make its own, then register the new keys")

    def rotate_key(self, device_id: str, signing_key: bytes, encryption_key: bytes) -> None:
        now = time.time()
        with self._lock, self.transaction():
            self._refuse_keys_of_another(device_id, signing_key, encryption_key)
            self._execute("UPDATE devices SET signing_key = ?, encryption_key = ? WHERE device_id = ?",
                          (signing_key, encryption_key, device_id))
            self._add_key(device_id, signing_key, now)

    def device_key(self, device_id: str, kid: str) -> tuple[bytes, float, float | None] | None:
        """(raw Ed25519 key, valid from, valid until) of one of the device's keys, by key id."""
        with self._lock:
            row = self._execute("SELECT signing_key, valid_from, valid_until FROM device_keys WHERE device_id = ? "
                                "AND key_id = ?", (device_id, kid)).fetchone()
        return (bytes(row[0]), float(row[1]), _seconds(row[2])) if row else None

    def set_device_state(self, device_id: str, state: str) -> DeviceRecord | None:
        if state not in DEVICE_STATES:
            raise ValueError(f"device state must be one of {DEVICE_STATES}")
        with self._lock:
            current = self.device(device_id)
            if current is None:
                return None
            if current.state == "retired" and state != "retired":
                raise ValueError("a retired device stays retired (register it again as a new device)")
            since = None if state == "active" else (current.state_since if current.state == state else time.time())
            self._execute("UPDATE devices SET state = ?, state_since = ? WHERE device_id = ?",
                          (state, since, device_id))
        return self.device(device_id)

    def device(self, device_id: str) -> DeviceRecord | None:
        with self._lock:
            row = self._execute("SELECT device_id, signing_key, encryption_key, site, state, state_since FROM devices "
                                "WHERE device_id = ?", (device_id,)).fetchone()
        return _device(row) if row else None

    def device_seen(self, device_id: str, at: float, certificate_not_after: float | None) -> None:
        """Record a call of the device (and the end of the certificate it called with)."""
        with self._lock:
            self._execute("UPDATE devices SET last_seen = ?, certificate_not_after = COALESCE(?, "
                          "certificate_not_after) WHERE device_id = ?", (at, certificate_not_after, device_id))

    def device_statuses(self, site: str = "") -> list[DeviceStatus]:
        """Every device (of ``site`` when given), by id."""
        where, params = ("WHERE site = ? ", (site,)) if site else ("", ())
        with self._lock:
            rows = self._execute("SELECT device_id, site, state, state_since, registered, signing_key, last_seen, "
                                 f"certificate_not_after FROM devices {where}ORDER BY device_id", params).fetchall()
        return [DeviceStatus(r[0], r[1], r[2] or "active", _seconds(r[3]), float(r[4]), key_id(bytes(r[5])),
                             _seconds(r[6]), _seconds(r[7])) for r in rows]

    def devices_at(self, site: str) -> list[DeviceRecord]:
        with self._lock:
            rows = self._execute("SELECT device_id, signing_key, encryption_key, site, state, state_since FROM devices "
                                 "WHERE site = ?", (site,)).fetchall()
        return [_device(r) for r in rows]

    # cards
    def put_card(self, card: CardRecord) -> None:
        with self._lock:
            self._execute("INSERT INTO cards (card_id, site, card_type, commitment, model_id, issued, expires, holder, "
                          "age_band) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (card.card_id, card.site, card.card_type, card.commitment, card.model_id, card.issued,
                           card.expires, card.holder, card.age_band))

    def card(self, card_id: str) -> CardRecord | None:
        with self._lock:
            row = self._execute("SELECT card_id, site, card_type, commitment, model_id, issued, expires, holder, "
                                "age_band FROM cards WHERE card_id = ?", (card_id,)).fetchone()
        return CardRecord(card_id=row[0], site=row[1], card_type=row[2], commitment=bytes(row[3]), model_id=row[4],
                          issued=float(row[5]), expires=float(row[6]), holder=row[7], age_band=row[8]) if row else None

    # delegations and immunizations
    def put_delegation(self, card_id: str, child_card: str, guardian: str, valid_until: float) -> None:
        with self._lock:
            self._execute("INSERT INTO delegations VALUES (?, ?, ?, ?)", (card_id, child_card, guardian, valid_until))

    def immunization_for(self, appointment: str) -> dict | None:
        with self._lock:
            row = self._execute("SELECT resource FROM immunizations WHERE appointment = ?", (appointment,)).fetchone()
        return json.loads(row[0]) if row else None

    def immunizations_of(self, holder: str) -> list[dict]:
        with self._lock:
            rows = self._execute("SELECT resource FROM immunizations WHERE holder = ? ORDER BY recorded",
                                 (holder,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # admissions and escort permits
    def admission(self, patient_id: str) -> Admission | None:
        with self._lock:
            row = self._execute("SELECT patient_id, site, ward, admitted, expected_until, discharged FROM admissions "
                                "WHERE patient_id = ?", (patient_id,)).fetchone()
        return Admission(patient_id=row[0], site=row[1], ward=row[2], admitted=float(row[3]),
                         expected_until=float(row[4]), discharged=_seconds(row[5])) \
            if row else None

    def put_admission(self, admission: Admission) -> None:
        with self._lock:
            self._execute("INSERT INTO admissions VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (patient_id) DO UPDATE SET "
                          "site = excluded.site, ward = excluded.ward, admitted = excluded.admitted, "
                          "expected_until = excluded.expected_until, discharged = excluded.discharged",
                          (admission.patient_id, admission.site, admission.ward, admission.admitted,
                           admission.expected_until, admission.discharged))

    def put_permit(self, card_id: str, patient_id: str, site: str, ward: str, issued: float, expires: float) -> None:
        with self._lock:
            self._execute("INSERT INTO permits VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                          (card_id, patient_id, site, ward, issued, expires))

    def active_permits(self, patient_id: str, now: float) -> list[str]:
        """Card ids of the patient's permits that have not ended or expired, oldest first."""
        with self._lock:
            rows = self._execute("SELECT card_id FROM permits WHERE patient_id = ? AND ended IS NULL AND expires > ? "
                                 "ORDER BY issued", (patient_id, now)).fetchall()
        return [r[0] for r in rows]

    def end_permit(self, card_id: str, reason: str, now: float) -> None:
        with self._lock:
            self._execute("UPDATE permits SET ended = ?, end_reason = ? WHERE card_id = ? AND ended IS NULL",
                          (now, reason, card_id))

    def is_revoked(self, card_id: str) -> bool:
        with self._lock:
            return self._execute("SELECT 1 FROM revoked_cards WHERE card_id = ?", (card_id,)).fetchone() is not None

    def revoked_cards_expired_before(self, cutoff: float) -> list[str]:
        """Revoked cards this registry issued that expired before ``cutoff`` (unix seconds)."""
        with self._lock:
            rows = self._execute("SELECT r.card_id FROM revoked_cards r JOIN cards c ON c.card_id = r.card_id "
                                 "WHERE c.expires < ?", (cutoff,)).fetchall()
        return [r[0] for r in rows]

    def record_revocation(self, card_id: str, reason: str) -> bool:
        """Remember that a card was revoked; False when it already was."""
        with self._lock:
            cursor = self._execute("INSERT INTO revoked_cards VALUES (?, ?, ?) ON CONFLICT (card_id) DO NOTHING",
                                   (card_id, reason, time.time()))
        return bool(cursor.rowcount == 1)

    # tokens
    def store_tokens(self, rows: list[TokenRow]) -> list[str]:
        """Store a batch in one transaction; per row 'stored', 'duplicate' (same token already stored) or
        'conflict' (the id is reused with other content). Idempotent: ON CONFLICT decides per row."""
        results = []
        with self._lock, self.transaction():
            for r in rows:
                cursor = self._execute(
                    "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, token_id) "
                    "DO NOTHING", (r.device_id, r.token_id, r.card_id, r.iat, r.decision, json.dumps(r.reasons),
                                   r.sequence, r.site, r.gate, r.token, time.time()))
                if cursor.rowcount == 1:
                    if r.record is not None:
                        self._execute("INSERT INTO immunizations VALUES (?, ?, ?, ?, ?, ?)",
                                      (r.card_id, r.record["holder"], r.device_id, r.token_id,
                                       json.dumps(r.record["resource"]), time.time()))
                    if r.override is not None:
                        self._execute("INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, "
                                      "token_id) DO NOTHING", (r.device_id, r.override["refused"], r.token_id,
                                                               r.override["staff_card"], r.override["reason"], r.iat))
                    results.append("stored")
                    continue
                row = self._execute("SELECT token FROM tokens WHERE device_id = ? AND token_id = ?",
                                    (r.device_id, r.token_id)).fetchone()
                results.append("duplicate" if row and bytes(row[0]) == r.token else "conflict")
            days = collections.Counter((r.device_id, r.iat // 86400) for r, result in zip(rows, results, strict=True)
                                       if result == "stored")
            for (device_id, day), count in days.items():
                self._execute("INSERT INTO token_days VALUES (?, ?, ?) ON CONFLICT (device_id, day) DO UPDATE "
                              "SET tokens = token_days.tokens + excluded.tokens", (device_id, day, count))
        return results

    def tokens_signed(self, device_id: str, day: int) -> int:
        """How many of a device's tokens stored here were signed on UTC day ``day`` (iat // 86400)."""
        with self._lock:
            row = self._execute("SELECT tokens FROM token_days WHERE device_id = ? AND day = ?",
                                (device_id, day)).fetchone()
        return int(row[0]) if row else 0

    def token(self, device_id: str, token_id: str) -> StoredToken | None:
        with self._lock:
            row = self._execute("SELECT token_id, device_id, card_id, iat, decision, reasons, sequence, site, gate "
                                "FROM tokens WHERE device_id = ? AND token_id = ?", (device_id, token_id)).fetchone()
        return StoredToken(token_id=row[0], device_id=row[1], card_id=row[2], iat=int(row[3]), decision=row[4],
                           reasons=json.loads(row[5]), sequence=int(row[6]), site=row[7] or "",
                           gate=row[8] or "") if row else None

    def override_times(self, device_id: str, refused: str) -> list[int]:
        """The iat of each stored override of this refusal (a DENY's token id, or ``card:<id>``) by the device."""
        with self._lock:
            rows = self._execute("SELECT iat FROM overrides WHERE device_id = ? AND refused = ?",
                                 (device_id, refused)).fetchall()
        return [int(r[0]) for r in rows]

    def prune_records(self, before: int, *, chunk: int = 5000) -> dict[str, int]:
        """Delete what is older than ``before`` (unix seconds): tokens decided then and the override records of
        that time, ``chunk`` rows per transaction so deliveries go on in between; admissions discharged then,
        with their permits' records. Recorded vaccinations (FHIR Immunization resources) are medical records
        and stay; card records stay (the revocation list keeps the handle of a revoked card it holds no
        record of). Returns the rows deleted per kind."""
        tokens = 0
        while True:
            with self._lock, self.transaction():
                gone = self._execute("DELETE FROM tokens WHERE (device_id, token_id) IN (SELECT device_id, token_id "
                                     "FROM tokens WHERE iat < ? ORDER BY iat LIMIT ?)", (before, chunk)).rowcount
                self._execute("DELETE FROM overrides WHERE iat < ?", (before,))
                self._execute("DELETE FROM token_days WHERE day < ?", (before // 86400,))
            tokens += max(gone, 0)
            if gone < chunk:
                break
        with self._lock, self.transaction():
            self._execute("DELETE FROM permits WHERE patient_id IN (SELECT patient_id FROM admissions WHERE "
                          "discharged IS NOT NULL AND discharged < ?) AND ended IS NOT NULL", (before,))
            admissions = self._execute("DELETE FROM admissions WHERE discharged IS NOT NULL AND discharged < ?",
                                       (before,)).rowcount
        return {"tokens": tokens, "admissions": max(admissions, 0)}

    def reachable(self) -> bool:
        """Whether the database answers now (the health service's probe). Tried twice: the first try may only
        find a connection PostgreSQL dropped, and the second connects again."""
        for _ in range(2):
            try:
                with self._lock:
                    self._execute("SELECT 1").fetchone()
                return True
            except Exception:
                log.debug("database probe failed", exc_info=True)
        return False

    def token_count(self) -> int:
        with self._lock:
            return int(self._execute("SELECT COUNT(*) FROM tokens").fetchone()[0])

    def history(self, card_id: str, *, after: tuple[int, str, int, str] | None = None,
                limit: int | None = None) -> list[StoredToken]:
        """A card's stored tokens in time order (iat, then device and its sequence). ``after``: the key
        (iat, device_id, sequence, token_id) of the last entry of the previous page; ``limit``: the page's size
        (None: all)."""
        where = "card_id = ?"
        params: list[object] = [card_id]
        if after is not None:
            where += " AND (iat, device_id, sequence, token_id) > (?, ?, ?, ?)"
            params += list(after)
        page = ""
        if limit is not None:
            page = " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._execute("SELECT token_id, device_id, card_id, iat, decision, reasons, sequence, site, gate "
                                 f"FROM tokens WHERE {where} ORDER BY iat, device_id, sequence, token_id{page}",
                                 tuple(params)).fetchall()
        return [StoredToken(token_id=r[0], device_id=r[1], card_id=r[2], iat=int(r[3]), decision=r[4],
                            reasons=json.loads(r[5]), sequence=int(r[6]), site=r[7] or "", gate=r[8] or "")
                for r in rows]

    def token_ids(self) -> list[str]:
        """Every stored token id (ids are unique per device; the tests' devices draw them at random)."""
        with self._lock:
            return [r[0] for r in self._execute("SELECT token_id FROM tokens ORDER BY token_id").fetchall()]

    # templates
    def put_template(self, card_id: str, sealed: bytes, model_id: str, commitment: bytes, site: str) -> None:
        with self._lock:
            self._execute("INSERT INTO templates VALUES (?, ?, ?, ?, ?) ON CONFLICT (card_id) DO UPDATE SET "
                          "sealed = excluded.sealed, model_id = excluded.model_id, "
                          "commitment = excluded.commitment, site = excluded.site",
                          (card_id, sealed, model_id, commitment, site))
            self._templates_changed([site])

    def _templates_changed(self, sites: list[str]) -> None:
        """Raise these sites' template versions, after the change: a reader between the two sees the new
        templates with the old version, and syncs in full again next time (the other order could hide one)."""
        for site in sites:
            self._execute("INSERT INTO template_versions VALUES (?, 1) ON CONFLICT (site) DO UPDATE SET "
                          "version = template_versions.version + 1", (site,))

    def templates_version(self, site: str) -> int:
        """The version of what ``templates_for_site(site)`` returns: the site's own plus the every-site ones'
        (both only grow, so the sum moves whenever either does); 0 before any template was stored."""
        with self._lock:
            row = self._execute("SELECT COALESCE(SUM(version), 0) FROM template_versions WHERE site IN (?, '*')",
                                (site,)).fetchone()
        return int(row[0])

    def delete_ended_templates(self, now: float | None = None) -> int:
        """Delete the templates of cards that were revoked or have expired: the registry keeps a face template
        only while its card lives. Returns how many."""
        now = time.time() if now is None else now
        ended = ("card_id IN (SELECT card_id FROM revoked_cards) OR card_id IN (SELECT card_id FROM cards WHERE "
                 "expires <= ?)")
        with self._lock:
            sites = [r[0] for r in self._execute(f"SELECT DISTINCT site FROM templates WHERE {ended}", (now,))]
            if not sites:
                return 0
            removed = int(self._execute(f"DELETE FROM templates WHERE {ended}", (now,)).rowcount)
            self._templates_changed(sites)
        return removed

    def template_count(self) -> int:
        with self._lock:
            return int(self._execute("SELECT COUNT(*) FROM templates").fetchone()[0])

    def templates_for_site(self, site: str, now: float | None = None, *, after: str = "",
                           limit: int | None = None) -> list[tuple[str, bytes, str]]:
        """The templates a site's gates may hold: not of a revoked card, nor of one known to have expired. A
        template whose card has ended is no longer sent, so the gates delete it (data minimisation: a face
        template is biometric data). A card this registry holds no record of (stored by release 0.1.0, which
        kept none) has no known end, so its template is still sent. In card id order; a page is the first
        ``limit`` whose card id sorts after ``after``."""
        now = time.time() if now is None else now
        page = " LIMIT ?" if limit is not None else ""
        with self._lock:
            rows = self._execute(
                "SELECT t.card_id, t.sealed, t.model_id FROM templates t LEFT JOIN cards c ON c.card_id = t.card_id "
                "WHERE (t.site = ? OR t.site = '*') AND (c.card_id IS NULL OR c.expires > ?) "
                "AND NOT EXISTS (SELECT 1 FROM revoked_cards r WHERE r.card_id = t.card_id) AND t.card_id > ? "
                "ORDER BY t.card_id" + page, (site, now, after) + ((limit,) if limit is not None else ())).fetchall()
        return [(r[0], bytes(r[1]), r[2]) for r in rows]

    # documents (trust list, revocation list)
    def put_document(self, name: str, version: int, body: str) -> None:
        with self._lock:
            self._execute("INSERT INTO documents VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                          "version = excluded.version, body = excluded.body", (name, version, body))

    def document(self, name: str) -> tuple[int, str] | None:
        with self._lock:
            row = self._execute("SELECT version, body FROM documents WHERE name = ?", (name,)).fetchone()
        return (int(row[0]), row[1]) if row else None


class SQLiteStorage(Storage):
    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self.create_schema()

    def _execute(self, sql: str, params: tuple = ()) -> Any:
        return self._db.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


class PostgresStorage(Storage):
    """One connection, made again when it was lost (a PostgreSQL restart, a failover, an idle connection
    cut by a firewall). Before, the registry kept the dead connection and failed every call until it was
    restarted itself: every gate's sync failed until the gates went stale and refused everyone. The call
    that finds the connection lost still fails (the devices retry); the next one reconnects, never inside a
    transaction, which fails whole instead."""

    #: Seconds to wait for PostgreSQL when (re)connecting; calls wait under the storage lock meanwhile.
    CONNECT_TIMEOUT_S = 5

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn
        self._transactions = 0
        self._db = self._connect()
        self.create_schema()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=self.CONNECT_TIMEOUT_S)

    def _connection(self) -> Any:
        if (self._db.closed or self._db.broken) and not self._transactions:
            log.warning("registry database connection lost; connecting again")
            self._db = self._connect()
        return self._db

    def _execute(self, sql: str, params: tuple = ()) -> Any:
        sql = sql.replace("?", "%s").replace(" BLOB", " BYTEA")
        return self._connection().execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        connection = self._connection()
        self._transactions += 1
        try:
            with connection.transaction():
                yield
        finally:
            self._transactions -= 1

    def close(self) -> None:
        self._db.close()


def _seconds(value: Any) -> float | None:
    """A nullable time column as unix seconds (None stays None: never, or not known)."""
    return None if value is None else float(value)


def key_id(signing_key: bytes) -> str:
    """A device key's id as tokens carry it in ``kid``: the first 8 bytes of SHA-256 of the raw key, hex."""
    return hashlib.sha256(signing_key).digest()[:8].hex()


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(row[0], bytes(row[1]), bytes(row[2]), row[3], row[4] or "active",
                        _seconds(row[5]))


def open_storage(url: str) -> Storage:
    """``sqlite:///path/to/registry.sqlite`` or ``postgresql://user@host:port/db``."""
    if url.startswith("sqlite:///"):
        return SQLiteStorage(Path(url[len("sqlite:///"):]))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(url)
    raise ValueError(f"unsupported database URL {url!r} (sqlite:///PATH or postgresql://...)")
