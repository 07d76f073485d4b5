"""The device's Ed25519 key pair, made on first start and kept in a file only the service can read."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge.errors import SecurityError

log = logging.getLogger(__name__)
KEY_FILE = "device_key.pem"


def write_secret(path: Path, data: bytes) -> None:
    """Write a secret atomically with mode 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_secret(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecurityError(f"{path} is readable by group or others (mode {oct(mode & 0o777)}); chmod 600 it",
                            code="key_permissions")
    return path.read_bytes()


class DeviceKey:
    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.public_raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(self.public_raw).digest()[:8]

    @classmethod
    def load_or_create(cls, key_dir: Path) -> DeviceKey:
        path = key_dir / KEY_FILE
        if path.exists():
            try:
                key = serialization.load_pem_private_key(read_secret(path), password=None)
            except ValueError as exc:
                raise SecurityError(f"{path} is not a readable private key: {exc}", code="key_corrupt") from exc
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise SecurityError(f"{path} is not an Ed25519 key", code="key_corrupt")
            return cls(key)
        key = ed25519.Ed25519PrivateKey.generate()
        write_secret(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        log.info("device key created", extra={"fields": {"path": str(path)}})
        return cls(key)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
