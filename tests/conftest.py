from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from crm_cli.system import fresh_vhost
from crm_shared.auth import Caller, Role
from crm_shared.crypto import new_data_key_text
from tests.support import secantus_server

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
# The data key of this test run, for the systems the tests start and the stores they open.
os.environ.setdefault("CRM_DATA_KEY", new_data_key_text())


@pytest.fixture(scope="session")
def amqp_uri() -> Iterator[str]:
    with fresh_vhost() as uri:
        yield uri


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    with secantus_server() as uri:
        yield uri


@pytest.fixture(scope="session")
def secret() -> bytes:
    return secrets.token_urlsafe(48).encode()


@pytest.fixture
def operator() -> Caller:
    return Caller("op-1", Role.OPERATOR)


@pytest.fixture
def agent() -> Caller:
    return Caller("u-a1001", Role.AGENT, "A-1001")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards."""
    name = f"crm_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL is not reachable ({e}); start it with: pg_ctlcluster "
            "--skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    yield name
    drop_postgres_database(name)


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The eventsourcing environment of one event store, on SQLite and on PostgreSQL."""
    from crm_shared.eventstore import sqlite_env

    if request.param == "sqlite":
        return sqlite_env(tmp_path / "store.sqlite")
    database = request.getfixturevalue("postgres_database")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": database,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "CREATE_TABLE": "true",
    }
