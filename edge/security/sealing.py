"""Encrypt a template to one recipient: X25519 key agreement + HKDF-SHA256 + AES-256-GCM.

``sealed = ephemeral public key (32) || nonce (12) || ciphertext+tag``; the associated data binds it to
the card id, so a sealed template cannot be replayed under another card. The same construction as HPKE
base mode (RFC 9180) in spirit, kept to the primitives ``cryptography`` provides.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.errors import SecurityError
from edge.security.keys import read_secret, write_secret

INFO = b"edge-template-seal-v1"
ENC_KEY_FILE = "device_enc_key.pem"


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=INFO).derive(shared)


def raw_public(key: x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(recipient: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` to the raw 32-byte X25519 public key ``recipient``."""
    ephemeral = x25519.X25519PrivateKey.generate()
    shared = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(recipient))
    eph_raw = raw_public(ephemeral.public_key())
    nonce = os.urandom(12)
    return eph_raw + nonce + AESGCM(_key(shared, eph_raw, recipient)).encrypt(nonce, plaintext, aad)


def unseal(private: x25519.X25519PrivateKey, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 32 + 12 + 16:
        raise SecurityError("sealed blob too short", code="template_corrupt")
    eph_raw, nonce, body = sealed[:32], sealed[32:44], sealed[44:]
    try:
        shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(eph_raw))
    except ValueError as exc:  # a low-order point (all zeros, say) gives no shared key: damaged or forged
        raise SecurityError("sealed template has an unusable ephemeral key", code="template_corrupt") from exc
    try:
        return AESGCM(_key(shared, eph_raw, raw_public(private.public_key()))).decrypt(nonce, body, aad)
    except InvalidTag as exc:
        raise SecurityError("sealed template fails authentication (wrong key, card or tampered)",
                            code="template_corrupt") from exc


def load_or_create_x25519(key_dir: Path, name: str = ENC_KEY_FILE) -> x25519.X25519PrivateKey:
    path = key_dir / name
    if path.exists():
        key = serialization.load_pem_private_key(read_secret(path), password=None)
        if not isinstance(key, x25519.X25519PrivateKey):
            raise SecurityError(f"{path} is not an X25519 key", code="key_corrupt")
        return key
    key = x25519.X25519PrivateKey.generate()
    write_secret(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return key
