"""What the device last applied from the registry, on disk, so that a restart changes nothing.

One JSON file holds the trust list, the revocation list, their versions and the time of the last complete
sync. It is replaced atomically (temporary file, fsync, rename, fsync of the folder), so after a crash or a
power cut it is either the old state or the new one, and the sync time can never describe data that is not
there. The daemon loads it at start; a version that would go backwards is refused.

A sync that finds both lists unchanged, as most do, writes only its time, to a small second file that names
the versions it confirmed (``SYNC_TIME_FILE``). Rewriting the lists every minute cost about 36 bytes per
listed revocation each time, with two fsyncs, on an SD card. The second file counts only while its versions
are the lists' own, so it can never vouch for data that is not there either.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edge.credential.trust import RevocationList, TrustList
from edge.errors import ConfigError, SecurityError
from edge.security.keys import write_secret

log = logging.getLogger(__name__)
STATE_FILE = "synced_state.json"
SYNC_TIME_FILE = "synced_at.json"
FORMAT = 1


@dataclass
class SyncedState:
    trust: TrustList
    revocations: RevocationList
    synced_at: float  # unix seconds of the last complete sync


class SyncedStateFile:
    def __init__(self, folder: Path) -> None:
        self.path = folder / STATE_FILE
        self.time_path = folder / SYNC_TIME_FILE

    def load(self) -> SyncedState | None:
        """The last applied state; None when the device never synced. A damaged file is an error (the
        daemon must not silently fall back to older data)."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path} is unreadable ({exc}); remove it to resync from the registry",
                              key="registry") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ConfigError(f"{self.path} has an unknown format; remove it to resync from the registry",
                              key="registry")
        try:
            state = SyncedState(TrustList.from_json(raw["trust_list"], str(self.path)),
                                RevocationList.from_json(raw["revocations"], str(self.path)),
                                float(raw["synced_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{self.path} is incomplete ({exc!r}); remove it to resync", key="registry") from exc
        state.synced_at = max(state.synced_at, self._confirmed_at(state))
        return state

    def _confirmed_at(self, state: SyncedState) -> float:
        """The last sync time that confirmed these very lists; 0 if none did (or the small file is unusable:
        then the lists' own, older time counts, which errs towards stale)."""
        try:
            raw = json.loads(self.time_path.read_text())
            if raw["trust_version"] == state.trust.version and raw["revocations_version"] == state.revocations.version:
                return float(raw["synced_at"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("sync time file unusable; the lists' own sync time counts",
                        extra={"fields": {"path": str(self.time_path), "error": repr(exc)[:200]}})
        return 0.0

    def save(self, state: SyncedState, previous: SyncedState | None) -> None:
        """Persist ``state`` atomically; refuses a trust or revocation version older than ``previous``."""
        if previous is not None:
            if state.trust.version < previous.trust.version:
                raise SecurityError(f"registry sent trust list version {state.trust.version}, older than the "
                                    f"applied {previous.trust.version}", code="sync_rollback")
            if state.revocations.version < previous.revocations.version:
                raise SecurityError(f"registry sent revocation list version {state.revocations.version}, older "
                                    f"than the applied {previous.revocations.version}", code="sync_rollback")
        if previous is not None and state.trust.to_json() == previous.trust.to_json() and \
                state.revocations.to_json() == previous.revocations.to_json():
            _replace(self.time_path, json.dumps({"synced_at": state.synced_at, "trust_version": state.trust.version,
                                                 "revocations_version": state.revocations.version}).encode())
            return
        body = json.dumps({"format": FORMAT, "synced_at": state.synced_at, "trust_list": state.trust.to_json(),
                           "revocations": state.revocations.to_json()}, sort_keys=True).encode()
        _replace(self.path, body)


def _replace(path: Path, body: bytes) -> None:
    """Write ``path`` atomically (edge/security/keys.py ``write_secret``), then fsync the folder so the rename
    itself survives a power cut."""
    write_secret(path, body)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
