"""The daemon's TLS files as a site meets them: a damaged or mismatched file is named at start-up (gRPC alone
reported "Failed to bind", which the daemon read as a port in use), and a certificate about to expire is
reported in the log, the metrics and DeviceInfo before it shuts the gate out."""

import logging
import shutil
import urllib.request

import pytest
from cryptography import x509
from msgspec.structs import replace

from edge.errors import ConfigError
from edge.proto_gen.edge.v1 import edge_pb2 as pb
from edge.proto_gen.edge.v1 import edge_pb2_grpc as pb_grpc
from edge.security.ca import issue_cert
from edge.server.daemon import EdgeDaemon

from .conftest import PKI, SERVER_NAME, Camera, connect, make_config


def _tls_copy(folder, pki):
    folder.mkdir()
    for name in ("ca.pem", "ca.key", f"{SERVER_NAME}.pem", f"{SERVER_NAME}.key"):
        shutil.copy(pki / name, folder / name)
    return folder


def test_a_damaged_certificate_is_named_instead_of_a_port_in_use(tmp_path, world):
    config = make_config(tmp_path / "device", world.issuer)
    tls = _tls_copy(tmp_path / "tls", PKI["dir"])
    (tls / f"{SERVER_NAME}.pem").write_text("")  # a copy that was cut short
    with pytest.raises(ConfigError) as e:
        EdgeDaemon(replace(config, server=replace(config.server, tls_dir=tls)),
                   source_factory=Camera(scene=world.scenes["no_card"]))
    assert e.value.code == "tls_invalid" and e.value.details["key"] == "server.tls_dir"
    assert f"{SERVER_NAME}.pem" in e.value.message and "port" not in e.value.message
    assert not (tmp_path / "device" / "keys").exists()  # refused before anything was created


def test_a_key_from_another_certificate_is_named(tmp_path, world):
    config = make_config(tmp_path / "device", world.issuer)
    tls = _tls_copy(tmp_path / "tls", PKI["dir"])
    shutil.copy(PKI["dir"] / "operator-1.key", tls / f"{SERVER_NAME}.key")
    with pytest.raises(ConfigError) as e:
        EdgeDaemon(replace(config, server=replace(config.server, tls_dir=tls)),
                   source_factory=Camera(scene=world.scenes["no_card"]))
    assert e.value.code == "tls_invalid" and f"is not the key of {SERVER_NAME}.pem" in e.value.message


def test_a_certificate_about_to_expire_is_logged_measured_and_reported(tmp_path, world, caplog):
    tls = _tls_copy(tmp_path / "tls", PKI["dir"])
    cert_path, _ = issue_cert(tls, SERVER_NAME, server=True, days=10)  # the same CA: callers still connect
    not_after = x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc.timestamp()
    config = make_config(tmp_path / "device", world.issuer)
    config = replace(config, server=replace(config.server, tls_dir=tls, metrics_address="127.0.0.1:0"))
    daemon = EdgeDaemon(config, source_factory=Camera(scene=world.scenes["no_card"]))
    with caplog.at_level(logging.WARNING, logger="edge.server.daemon"):
        daemon.start()
    try:
        warned = [r for r in caplog.records if "tls_certificate_expiring" in r.getMessage()]
        assert len(warned) == 1 and warned[0].fields["certificate"] == "listener"
        assert warned[0].fields["file"] == str(cert_path) and warned[0].fields["days_left"] in (9.9, 10.0)
        with connect(daemon, "operator") as channel:
            info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
        assert info.tls_expires_at == pytest.approx(not_after) and info.tls_expires_certificate == "listener"
        text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=10).read().decode()
        line = next(x for x in text.splitlines()
                    if x.startswith('edge_tls_certificate_expiry_timestamp_seconds{certificate="listener"}'))
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(not_after)
        assert 'edge_tls_certificate_expiry_timestamp_seconds{certificate="listener_ca"}' in text
    finally:
        daemon.stop(1.0)


def test_a_daemon_with_years_left_logs_nothing_about_its_certificates(tmp_path, world, caplog):
    daemon = EdgeDaemon(make_config(tmp_path / "device", world.issuer),
                        source_factory=Camera(scene=world.scenes["no_card"]))
    with caplog.at_level(logging.WARNING, logger="edge.server.daemon"):
        daemon.start()
    try:
        assert not [r for r in caplog.records if "tls_certificate" in r.getMessage()]
        with connect(daemon) as channel:
            info = pb_grpc.DeviceServiceStub(channel).GetDeviceInfo(pb.DeviceInfoRequest(), timeout=10)
        assert info.tls_expires_at > 0 and info.tls_expires_certificate == "listener"
    finally:
        daemon.stop(1.0)
