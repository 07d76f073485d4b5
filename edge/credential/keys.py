"""Issuer keys and key ids. kid = first 8 bytes of SHA-256 of the DER SubjectPublicKeyInfo (HCERT)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cwt import COSEKey
from cwt.cose_key_interface import COSEKeyInterface

SUPPORTED_ALGS = {-7: "ES256", -8: "EdDSA", -19: "Ed25519"}

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public_key: PublicKey) -> bytes:
    return hashlib.sha256(spki_der(public_key)).digest()[:8]


def alg_name_for(key: PrivateKey | PublicKey) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) else "Ed25519"


def cose_private_key(private_key: PrivateKey, alg: str | None = None) -> COSEKeyInterface:
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return COSEKey.from_pem(pem, alg=alg or alg_name_for(private_key), kid=key_id(private_key.public_key()))


def cose_public_key(public_key: PublicKey, alg: str | None = None, kid: bytes | None = None) -> COSEKeyInterface:
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return COSEKey.from_pem(pem, alg=alg or alg_name_for(public_key), kid=kid or key_id(public_key))


def generate_issuer_key(alg: str = "ES256") -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("Ed25519", "EdDSA"):
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported issuer algorithm {alg!r}")


def load_private_pem(data: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("issuer key must be an EC P-256 or Ed25519 private key")
    return key


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
