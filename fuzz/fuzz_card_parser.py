"""Coverage-guided fuzz target over the card parser and verifier (atheris / libFuzzer).

Run: .venv/bin/pip install atheris && .venv/bin/python fuzz/fuzz_card_parser.py -max_total_time=60
The input is used three ways: as QR text, as a COSE message wrapped in a valid container, and as a
mutation of a real signed card. Anything other than CredentialError escaping, or a card verifying that
is not byte-identical to the issued one, is a crash the fuzzer reports. The hypothesis tests in
tests/credential/test_fuzz.py cover the same properties in CI.
"""

from __future__ import annotations

import hashlib
import sys

import atheris

with atheris.instrument_imports():
    from edge.credential.codec import unwrap, wrap
    from edge.credential.issuer import CardIssuer
    from edge.credential.keys import generate_issuer_key
    from edge.credential.trust import TrustList
    from edge.credential.verifier import CardVerifier
    from edge.errors import CredentialError

KEY = generate_issuer_key("ES256")
ISSUER = CardIssuer(KEY, "fuzz-hospital")
TRUST = TrustList()
TRUST.add("fuzz-hospital", KEY.public_key())
VERIFIER = CardVerifier(TRUST, site="ward-7")
CARD, _ = ISSUER.issue(card_type="escort_permit", holder=b"h" * 16, site="ward-7",
                       template_sha256=hashlib.sha256(b"t").digest(), model_id="m")
COSE = unwrap(CARD)


def attempt(text: str, original_ok: bool = False) -> None:
    try:
        VERIFIER.verify(text)
    except CredentialError:
        return
    if not original_ok:
        raise AssertionError(f"a fuzzed card verified: {text[:80]!r}")


def test_one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    attempt(fdp.ConsumeUnicodeNoSurrogates(600))
    attempt(wrap(data[:800]))
    if data:
        mutated = bytearray(COSE)
        for i, byte in enumerate(data[:16]):
            mutated[(byte * 7 + i * 131) % len(mutated)] ^= (byte | 1)
        attempt(wrap(bytes(mutated)), original_ok=bytes(mutated) == COSE)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
