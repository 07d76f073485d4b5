import hashlib

import pytest

from edge.credential.issuer import CardIssuer
from edge.credential.keys import generate_issuer_key
from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier

NOW = 1_800_000_000.0


@pytest.fixture(scope="module", params=["ES256", "Ed25519"])
def issuer(request):
    key = generate_issuer_key(request.param)
    return CardIssuer(key, "hospital-a"), key


@pytest.fixture(scope="module")
def trust(issuer):
    trust = TrustList(version=1)
    trust.add("hospital-a", issuer[1].public_key())
    return trust


def issue(issuer, **overrides):
    args = dict(card_type="escort_permit", holder=b"\x01" * 16, site="ward-7", ward="paediatrics",
                template_sha256=hashlib.sha256(b"template").digest(), model_id="sface", valid_for_s=3600, now=NOW)
    args.update(overrides)
    return issuer[0].issue(**args)


@pytest.fixture
def verifier(trust):
    return CardVerifier(trust, RevocationList(), site="ward-7", clock=lambda: NOW + 60, clock_skew_s=300)
