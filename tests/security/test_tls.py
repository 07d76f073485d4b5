"""TLS files are checked before gRPC sees them, and their expiry is known (edge.security.tls, edge.security.ca)."""

import datetime as dt
import logging
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.errors import ConfigError, SecurityError
from edge.security.ca import init_ca, issue_cert
from edge.security.tls import PeerCertificates, expiry_problems, load_tls_files, report_expiry

DAY = 86400.0


def files(folder, name):
    return folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    init_ca(folder)
    issue_cert(folder, "gate-1", server=True)
    issue_cert(folder, "gate-2", server=True)
    other = tmp_path_factory.mktemp("other-ca")
    init_ca(other)  # the same default name: only the signature tells them apart
    issue_cert(other, "gate-1", server=True)
    return folder, other


def test_good_files_load_with_the_lives_of_the_certificate_and_its_ca(pki):
    folder, _ = pki
    loaded = load_tls_files(*files(folder, "gate-1"), setting="server.tls_dir", role="listener")
    leaf, ca = loaded.lives
    assert (leaf.role, ca.role) == ("listener", "listener_ca")
    assert leaf.subject == "CN=gate-1" and ca.subject == "CN=edge dev CA"
    now = dt.datetime.now(dt.UTC).timestamp()
    assert 824 * DAY < leaf.not_after - now <= 825 * DAY
    assert ca.not_after > leaf.not_after
    loaded.server_credentials()  # gRPC accepts the bytes
    loaded.channel_credentials()


@pytest.mark.parametrize("damage, named, words", [
    ("cert", "gate-1.pem", "not a PEM certificate"),
    ("key", "gate-1.key", "not an unencrypted PEM private key"),
    ("ca", "ca.pem", "not a PEM certificate bundle"),
    ("swapped_key", "gate-1.key", "is not the key of gate-1.pem"),
    ("other_ca", "gate-1.pem", "not signed by a CA in ca.pem"),
])
def test_a_damaged_or_mismatched_file_is_named(pki, tmp_path, damage, named, words):
    folder, other = pki
    for name in ("ca.pem", "gate-1.pem", "gate-1.key"):
        shutil.copy(folder / name, tmp_path / name)
    if damage in ("cert", "key", "ca"):
        target = {"cert": "gate-1.pem", "key": "gate-1.key", "ca": "ca.pem"}[damage]
        (tmp_path / target).write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    elif damage == "swapped_key":
        shutil.copy(folder / "gate-2.key", tmp_path / "gate-1.key")
    else:
        shutil.copy(other / "gate-1.pem", tmp_path / "gate-1.pem")
        shutil.copy(other / "gate-1.key", tmp_path / "gate-1.key")
    with pytest.raises(ConfigError) as e:
        load_tls_files(*files(tmp_path, "gate-1"), setting="server.tls_dir", role="listener")
    assert e.value.code == "tls_invalid" and e.value.details["key"] == "server.tls_dir"
    assert named in e.value.message and words in e.value.message


def test_a_missing_file_is_unreadable_with_its_path(pki, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_tls_files(*files(tmp_path, "gate-1"), setting="registry.tls_dir", role="registry_client")
    assert e.value.code == "tls_unreadable" and str(tmp_path / "ca.pem") in e.value.message


def test_expired_and_expiring_certificates_are_reported_and_others_are_not(pki, caplog):
    folder, _ = pki
    lives = load_tls_files(*files(folder, "gate-1"), setting="s", role="listener").lives
    leaf_end = lives[0].not_after
    assert expiry_problems(list(lives), leaf_end - 31 * DAY) == []
    assert expiry_problems(list(lives), leaf_end - 29 * DAY) == [("expiring", lives[0])]
    assert expiry_problems(list(lives), leaf_end + 1) == [("expired", lives[0])]
    log = logging.getLogger("test.tls")
    with caplog.at_level(logging.WARNING, logger="test.tls"):
        assert report_expiry(log, lives, leaf_end - 10 * DAY) == 1
        assert report_expiry(log, lives, leaf_end + DAY) == 1
    expiring, expired = caplog.records
    assert expiring.levelno == logging.WARNING and "tls_certificate_expiring" in expiring.getMessage()
    assert expiring.fields["days_left"] == 10.0 and expiring.fields["file"].endswith("gate-1.pem")
    assert expired.levelno == logging.ERROR and "tls_certificate_expired" in expired.getMessage()


def test_a_caller_about_to_expire_is_logged_once_a_day(caplog):
    log = logging.getLogger("test.peers")
    peers = PeerCertificates(log)
    now = 1_800_000_000.0
    with caplog.at_level(logging.WARNING, logger="test.peers"):
        assert not peers.seen("gate-1", now + 40 * DAY, now)  # not yet within the warning
        assert peers.seen("gate-1", now + 5 * DAY, now)
        assert not peers.seen("gate-1", now + 5 * DAY, now + 3600)  # once a day
        assert peers.seen("gate-2", now + 5 * DAY, now + 3600)  # each caller
        assert peers.seen("gate-1", now + 5 * DAY, now + DAY)
    assert [r.fields["caller"] for r in caplog.records] == ["gate-1", "gate-2", "gate-1"]


def _ca_ending_in(folder, days):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "short CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def test_a_certificate_does_not_outlive_its_ca(tmp_path):
    ca = _ca_ending_in(tmp_path, 100)
    cert_path, _ = issue_cert(tmp_path, "gate-1", server=True)  # asked for the default 825 days
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc == ca.not_valid_after_utc


def test_an_expired_ca_issues_nothing(tmp_path):
    _ca_ending_in(tmp_path, -1)
    with pytest.raises(SecurityError) as e:
        issue_cert(tmp_path, "gate-1", server=True)
    assert e.value.code == "ca_expired"
    assert not (tmp_path / "gate-1.pem").exists()


def test_the_registry_client_names_a_damaged_file_instead_of_failing_every_sync(pki, tmp_path):
    """Before, the channel was made from whatever bytes were there and every sync logged the registry as
    unreachable; the gate went stale with the cause only in gRPC's own stderr."""
    from edge.registry_client.transport import GrpcTransport

    folder, _ = pki
    shutil.copy(folder / "ca.pem", tmp_path / "ca.pem")
    shutil.copy(folder / "gate-1.pem", tmp_path / "gate-1.pem")
    (tmp_path / "gate-1.key").write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as e:
        GrpcTransport("127.0.0.1:9", tls=files(tmp_path, "gate-1"), server_name="registry")
    assert e.value.details["key"] == "registry.tls_dir" and "gate-1.key" in e.value.message


def _leaf_with_usage(folder, name, usages):
    """A certificate signed by the CA in ``folder`` with exactly ``usages`` (as releases before 2026-11-24
    issued ``--server`` ones: server authentication only)."""
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(ca_key, hashes.SHA256()))
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))


def test_a_certificate_is_checked_for_the_use_it_is_put_to(tmp_path):
    from cryptography.x509.oid import ExtendedKeyUsageOID as Usage

    init_ca(tmp_path)
    _leaf_with_usage(tmp_path, "server-only", [Usage.SERVER_AUTH])
    _leaf_with_usage(tmp_path, "client-only", [Usage.CLIENT_AUTH])
    issue_cert(tmp_path, "board", server=True)
    with pytest.raises(ConfigError) as e:
        load_tls_files(*files(tmp_path, "server-only"), setting="registry.tls_dir", role="registry_client")
    assert e.value.code == "tls_invalid" and "server-only.pem" in e.value.message and "client" in e.value.message
    with pytest.raises(ConfigError) as e:
        load_tls_files(*files(tmp_path, "client-only"), setting="server.tls_dir", role="listener")
    assert "client-only.pem" in e.value.message and "as a server" in e.value.message
    for role in ("listener", "registry_client"):  # a board's one certificate serves both
        load_tls_files(*files(tmp_path, "board"), setting="s", role=role)
