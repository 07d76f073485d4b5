"""The container: PREFIX + Base45(zlib(COSE_Sign1)), parsed strictly with hard size limits.

Every step has its own reason code so a refusal says exactly what was wrong. Sizes are capped before
work is done: the text length before Base45, the decompressed size while inflating (a zlib bomb stops at
the cap), and the CBOR nesting by cbor2's own limits on the already-capped buffer.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Any

import base45
import cbor2

from edge.credential.model import CARD_PREFIX
from edge.errors import CredentialError

#: QR version 40 holds at most 4296 alphanumeric characters; nothing longer came from a QR code.
MAX_TEXT_CHARS = 4296
#: A card's COSE is ~270 bytes; 4 KiB leaves room for growth and stops zlib bombs.
MAX_COSE_BYTES = 4096
COSE_SIGN1_TAG = 18


@dataclass(frozen=True)
class CoseSign1:
    protected_bytes: bytes
    protected: dict
    unprotected: dict
    payload: bytes
    signature: bytes
    raw: bytes

    @property
    def alg(self) -> Any:
        return self.protected.get(1)

    @property
    def kid(self) -> bytes | None:
        kid = self.protected.get(4, self.unprotected.get(4))
        return kid if isinstance(kid, bytes) else None


def wrap(cose: bytes, prefix: str = CARD_PREFIX) -> str:
    return prefix + base45.b45encode(zlib.compress(cose, 9)).decode("ascii")


def _inflate_exact(compressed: bytes) -> bytes | None:
    """Inflate a complete zlib stream with the size cap; None if it is not exactly one valid stream."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(compressed, MAX_COSE_BYTES + 1)
    except zlib.error:
        return None
    if len(out) > MAX_COSE_BYTES or inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        return None
    return out


def _padding_is_zero(compressed: bytes, inflated: bytes) -> bool:
    """The bits after the final deflate block (in the byte before the Adler-32 trailer) must be zero.

    Decoders ignore them, so a flipped padding bit would otherwise leave a card that still verifies.
    Every deflate encoder writes zeros there; a bit is padding if flipping it changes nothing.
    """
    last = len(compressed) - 5
    if last < 2:
        return True
    for bit in range(7, -1, -1):
        mask = 1 << bit
        if not compressed[last] & mask:
            continue
        flipped = bytearray(compressed)
        flipped[last] ^= mask
        if _inflate_exact(bytes(flipped)) == inflated:
            return False
    return True


def unwrap(text: str, prefix: str = CARD_PREFIX) -> bytes:
    """QR text -> COSE bytes; raises CredentialError card_oversized / card_prefix / card_base45 / card_zlib."""
    if not isinstance(text, str):
        raise CredentialError("card payload must be text", code="card_prefix")
    if len(text) > MAX_TEXT_CHARS:
        raise CredentialError(f"card text is {len(text)} characters, above the limit of {MAX_TEXT_CHARS}",
                              code="card_oversized")
    if not text.startswith(prefix):
        raise CredentialError(f"not a card: the text does not start with {prefix!r}", code="card_prefix")
    try:
        compressed = base45.b45decode(text[len(prefix):])
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialError(f"card body is not valid Base45: {exc}", code="card_base45") from exc
    inflater = zlib.decompressobj()
    try:
        cose = inflater.decompress(compressed, MAX_COSE_BYTES + 1)
    except zlib.error as exc:
        raise CredentialError(f"card body is not valid zlib data: {exc}", code="card_zlib") from exc
    if len(cose) > MAX_COSE_BYTES or inflater.unconsumed_tail:
        raise CredentialError(f"card body inflates beyond {MAX_COSE_BYTES} bytes (refused)", code="card_oversized")
    if not inflater.eof or inflater.unused_data:
        raise CredentialError("card body is truncated or has trailing data after the zlib stream",
                              code="card_zlib")
    if not _padding_is_zero(compressed, cose):
        raise CredentialError("card body has non-zero deflate padding bits (altered)", code="card_zlib")
    return cose


def loads_exact(data: bytes) -> Any:
    """Decode exactly one CBOR item; trailing bytes are an error (``cbor2.loads`` silently ignores them)."""
    stream = io.BytesIO(data)
    obj = cbor2.CBORDecoder(stream).decode()
    if stream.tell() != len(data):
        raise ValueError(f"{len(data) - stream.tell()} trailing bytes after the CBOR item")
    return obj


def parse_cose_sign1(cose: bytes) -> CoseSign1:
    """Strict COSE_Sign1 structure check (RFC 9052 §4.2); raises card_cbor or card_cose."""
    try:
        obj = loads_exact(cose)
    except Exception as exc:  # cbor2 raises CBORDecodeError, but also ValueError/RecursionError on hostile input
        raise CredentialError(f"not valid CBOR: {exc}", code="card_cbor") from exc
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != COSE_SIGN1_TAG:
            raise CredentialError(f"CBOR tag {obj.tag} is not COSE_Sign1 (18)", code="card_cose")
        obj = obj.value
    if not (isinstance(obj, list) and len(obj) == 4):
        raise CredentialError("COSE_Sign1 must be an array of 4 items", code="card_cose")
    protected_bytes, unprotected, payload, signature = obj
    if not (isinstance(protected_bytes, bytes) and isinstance(unprotected, dict)
            and isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise CredentialError("COSE_Sign1 items have the wrong types", code="card_cose")
    try:
        protected = loads_exact(protected_bytes) if protected_bytes else {}
    except Exception as exc:
        raise CredentialError(f"protected header is not valid CBOR: {exc}", code="card_cose") from exc
    if not isinstance(protected, dict):
        raise CredentialError("protected header is not a map", code="card_cose")
    return CoseSign1(protected_bytes, protected, unprotected, payload, signature, cose)
