"""Property-based tests over the parser: nothing crashes, nothing false verifies, no bit flip survives."""

import random

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.credential.codec import unwrap, wrap
from edge.errors import CredentialError

from .conftest import issue

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _refused(verifier, text):
    try:
        verifier.verify(text)
    except CredentialError:
        return True
    return False


@SETTINGS
@given(st.text(max_size=600))
def test_random_text_never_verifies(verifier, text):
    assert _refused(verifier, text)


@SETTINGS
@given(st.binary(max_size=600))
def test_random_cose_never_verifies(verifier, blob):
    assert _refused(verifier, wrap(blob))


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.integers(-300, 300), inner,
                                                                                 max_size=5), max_leaves=30))
def test_random_cbor_structures_never_verify(verifier, obj):
    assert _refused(verifier, wrap(cbor2.dumps(cbor2.CBORTag(18, obj))))
    assert _refused(verifier, wrap(cbor2.dumps(obj)))


def test_every_single_bit_flip_of_the_cose_is_refused(issuer, verifier):
    text, _ = issue(issuer)
    cose = unwrap(text)
    for i in range(len(cose) * 8):
        mutated = bytearray(cose)
        mutated[i // 8] ^= 1 << (i % 8)
        assert _refused(verifier, wrap(bytes(mutated))), f"bit {i} flip verified"


def test_every_single_bit_flip_of_the_qr_text_is_refused(issuer, verifier):
    text, _ = issue(issuer)
    raw = text.encode("ascii")
    for i in range(len(raw) * 8):
        mutated = bytearray(raw)
        mutated[i // 8] ^= 1 << (i % 8)
        assert _refused(verifier, mutated.decode("latin-1")), f"text bit {i} flip verified"


def test_trailing_or_leading_bytes_are_refused(issuer, verifier):
    text, _ = issue(issuer)
    cose = unwrap(text)
    for extra in (b"\x00", b"\xff", b"\xa0", cose):
        assert _refused(verifier, wrap(cose + extra))
    assert _refused(verifier, wrap(b"\x00" + cose))


@SETTINGS
@given(st.data())
def test_mutated_cards_never_verify(issuer, verifier, data):
    text, _ = issue(issuer)
    cose = bytearray(unwrap(text))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for _ in range(data.draw(st.integers(1, 8))):
        op = rng.choice(["flip", "insert", "delete", "replace"])
        pos = rng.randrange(len(cose))
        if op == "flip":
            cose[pos] ^= 1 << rng.randrange(8)
        elif op == "insert":
            cose.insert(pos, rng.randrange(256))
        elif op == "delete" and len(cose) > 1:
            del cose[pos]
        else:
            cose[pos] = (cose[pos] + rng.randrange(1, 256)) % 256
    if bytes(cose) != unwrap(text):  # an insert undone by a delete at the same place is no mutation
        assert _refused(verifier, wrap(bytes(cose)))
