"""The registry's link to PostgreSQL survives the server dropping it (a restart for an upgrade, a failover, a
firewall cutting an idle connection). The registry kept its one dead connection and failed every call until
it was restarted itself: every gate's sync failed, and a day later (registry.staleness_s) every gate refused
everyone. A real PostgreSQL server; the drop is pg_terminate_backend, what a restart does to a client."""

from __future__ import annotations

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
