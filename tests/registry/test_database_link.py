"""The registry's link to PostgreSQL survives the server dropping it (a restart for an upgrade, a failover, a
firewall cutting an idle connection). The registry kept its one dead connection and failed every call until
it was restarted itself: every gate's sync failed, and a day later (registry.staleness_s) every gate refused
everyone. A real PostgreSQL server; the drop is pg_terminate_backend, what a restart does to a client."""

from __future__ import annotations

import time

import grpc
import pytest

from edge.proto_gen.registry.v1 import registry_pb2 as rpb

from .conftest import admin_stub

pytestmark = pytest.mark.slow


def drop_connections(db_url: str) -> int:
    """Terminate every other backend connected to the registry's database; returns how many."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND pid <> pg_backend_pid()").fetchall())


@pytest.fixture
def pg_registry(tmp_path, pki, postgres_server):
    from registry.dev_postgres import create_database
    from registry.service import RegistryServer, RegistryState, TLSFiles
    from registry.storage import open_storage

    url = create_database(postgres_server)
    state = RegistryState.open(open_storage(url), tmp_path / "state")
    server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
    port = server.start("127.0.0.1:0")
    yield url, state, port
    server.stop(0.5)


def test_the_registry_connects_again_after_postgresql_dropped_it(pg_registry, pki):
    url, state, port = pg_registry
    admin = admin_stub(port, pki)
    issue = rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=b"\x01" * 32)
    first = admin.IssueCard(issue, timeout=10).card_id
    assert drop_connections(url) == 1
    outcomes = []
    for _ in range(3):  # the call that finds the connection gone fails (the devices retry); the next ones work
        try:
            outcomes.append(bool(admin.IssueCard(issue, timeout=10).card_id))
        except grpc.RpcError as exc:
            outcomes.append(exc.code().name)
            # what devices retry, and no database text: it went "Exception calling application: terminating
            # connection due to administrator command ..." to the caller
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and "request" in exc.details(), exc.details()
            assert "connection" not in exc.details() and "Exception" not in exc.details()
    assert outcomes == ["UNAVAILABLE", True, True], outcomes
    assert state.storage.card(first) is not None  # what was stored before the drop is read on the new link


def test_health_follows_the_database_and_the_registry_comes_back_with_it(tmp_path, pki):
    """A registry whose PostgreSQL is down answered health checks... it had none: a load balancer or a
    supervisor could not tell. Now the standard gRPC health service is NOT_SERVING while the database does not
    answer, calls are UNAVAILABLE (devices retry them), and both recover when PostgreSQL is back."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from registry.dev_postgres import ThrowawayServer, create_database, server_binaries
    from registry.service import RegistryServer, RegistryState, TLSFiles
    from registry.storage import open_storage

    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not installed (scripts/test.sh installs Debian's postgresql)")
    database = ThrowawayServer()  # its own server: this test stops it
    server = None
    try:
        state = RegistryState.open(open_storage(create_database(database.url)), tmp_path / "state")
        server = RegistryServer(state, tls=TLSFiles.in_dir(pki, "registry"))
        server.PROBE_EVERY_S = 0.2
        port = server.start("127.0.0.1:0")
        admin = admin_stub(port, pki)
        creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "dev-a.key").read_bytes(),
                                             (pki / "dev-a.pem").read_bytes())
        channel = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override",
                                                                            "registry")])
        health = health_pb2_grpc.HealthStub(channel)

        def status() -> str:
            reply = health.Check(health_pb2.HealthCheckRequest(service="registry.v1.Registry"), timeout=10)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        def settles(wanted: str) -> bool:
            deadline = time.time() + 30
            while time.time() < deadline:
                if status() == wanted:
                    return True
                time.sleep(0.1)
            return False

        issue = rpb.IssueCardRequest(card_type="health_card", site="ward-7", template_sha256=b"\x01" * 32)
        assert settles("SERVING")
        database.stop()
        assert settles("NOT_SERVING")
        with pytest.raises(grpc.RpcError) as e:
            admin.IssueCard(issue, timeout=20)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        database.start()
        assert settles("SERVING")
        assert admin.IssueCard(issue, timeout=20).card_id
        channel.close()
    finally:
        if server is not None:
            server.stop(0.5)
        database.remove()
