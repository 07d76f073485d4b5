"""`edge ca init|issue`: the development CA never loses its key to a second init, and a bad name or a missing
CA is a usage error, not a traceback or a file outside the folder."""

import subprocess
import sys


def edge(*args):
    r = subprocess.run([sys.executable, "-m", "edge", "ca", *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def test_a_second_init_keeps_the_ca_that_signed_every_certificate(tmp_path):
    ca = tmp_path / "ca"
    assert edge("init", str(ca))[0] == 0
    key = (ca / "ca.key").read_bytes()
    code, out, err = edge("init", str(ca))
    assert code == 2 and out == "" and "already holds a CA" in err
    assert (ca / "ca.key").read_bytes() == key


def test_issue_needs_a_ca_and_a_plain_name(tmp_path):
    code, _, err = edge("issue", str(tmp_path / "none"), "gate-7a", "--server")
    assert code == 2 and "edge ca init" in err and "Traceback" not in err
    ca = tmp_path / "ca"
    edge("init", str(ca))
    for name in ("../escape", "a/b", "", "-flag-like", "x" * 65):
        code, out, err = edge("issue", str(ca), name)
        assert code == 2 and out == "" and "Traceback" not in err, (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca"]
    assert sorted(p.name for p in ca.iterdir()) == ["ca.key", "ca.pem"]
    assert edge("issue", str(ca), "gate-7a.ward7.example", "--server")[0] == 0


def test_the_hospital_system_gets_its_role_from_the_cli(tmp_path):
    """docs/ESCORT.md sends the hospital's admission feed in with its own certificate; --role had no
    'hospital', so no site could make one."""
    from edge.security.identity import identity_from_pem

    ca = tmp_path / "ca"
    edge("init", str(ca))
    assert edge("issue", str(ca), "hospital-adt", "--role", "hospital")[0] == 0
    identity = identity_from_pem((ca / "hospital-adt.pem").read_bytes())
    assert (identity.name, identity.role) == ("hospital-adt", "hospital")
