"""Issuer trust list and revocation list, cached on the device as versioned JSON files.

Trust list: ``{"version": N, "issuers": [{"issuer": "...", "public_key_pem": "...", "alg": "ES256"}]}``.
kids are computed from the keys (never trusted from the file) and can collide: kid -> list of keys.
Revocation list: ``{"version": N, "hashes": ["<hex of the first 16 bytes of SHA-256(cti)>", ...]}``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from edge.credential.keys import PublicKey, key_id, public_pem
from edge.errors import ConfigError


def _read_json(path: Path, what: str) -> dict:
    try:  # from bytes: json detects the encoding and skips a byte order mark
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, or bytes that are no text
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} is not a JSON object")
    return data


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    public_key: PublicKey
    kid: bytes


@dataclass
class TrustList:
    version: int = 0
    by_kid: dict[bytes, list[TrustedIssuer]] = field(default_factory=lambda: defaultdict(list))

    def add(self, issuer: str, public_key: PublicKey, kid: bytes | None = None) -> TrustedIssuer:
        entry = TrustedIssuer(issuer, public_key, kid if kid is not None else key_id(public_key))
        self.by_kid[entry.kid].append(entry)
        return entry

    def candidates(self, kid: bytes) -> list[TrustedIssuer]:
        return list(self.by_kid.get(kid, []))

    def to_json(self) -> dict:
        issuers = [{"issuer": e.issuer, "kid": e.kid.hex(), "public_key_pem": public_pem(e.public_key).decode()}
                   for entries in self.by_kid.values() for e in entries]
        return {"version": self.version, "issuers": issuers}

    @classmethod
    def from_json(cls, raw: dict, source: str = "trust list") -> TrustList:
        try:
            trust = cls(version=int(raw["version"]))
            for item in raw["issuers"]:
                key = serialization.load_pem_public_key(item["public_key_pem"].encode())
                trust.add(str(item["issuer"]), key)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: invalid trust list ({exc!r})", key="issuers") from exc
        return trust

    @classmethod
    def load(cls, path: Path) -> TrustList:
        return cls.from_json(_read_json(path, "trust list"), str(path))


def revocation_handle(card_id: bytes) -> bytes:
    return hashlib.sha256(card_id).digest()[:16]


@dataclass
class RevocationList:
    version: int = 0
    hashes: set[bytes] = field(default_factory=set)

    def revoke(self, card_id: bytes) -> None:
        self.hashes.add(revocation_handle(card_id))

    def is_revoked(self, card_id: bytes) -> bool:
        return revocation_handle(card_id) in self.hashes

    def to_json(self) -> dict:
        return {"version": self.version, "hashes": sorted(h.hex() for h in self.hashes)}

    @classmethod
    def from_json(cls, raw: dict, source: str = "revocation list") -> RevocationList:
        try:
            hashes = {bytes.fromhex(h) for h in raw["hashes"]}
            if any(len(h) != 16 for h in hashes):
                raise ValueError("each hash must be 16 bytes")
            return cls(version=int(raw["version"]), hashes=hashes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: invalid revocation list ({exc})", key="hashes") from exc

    @classmethod
    def load(cls, path: Path) -> RevocationList:
        return cls.from_json(_read_json(path, "revocation list"), str(path))
