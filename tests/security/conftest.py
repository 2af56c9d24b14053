"""A PostgreSQL login role that really needs its password, on the session's test server.

The session server (tests/plugins/postgres.py) trusts every local connection, so a wrong
password would go unnoticed. `password_role` prepends `scram-sha-256` rules for one fresh role
to the server's pg_hba.conf (other roles keep trust: nothing else changes), reloads, creates
the role with PASSWORD and two databases it owns (a store and an MLflow tracking store), and
restores pg_hba.conf at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
import pytest

PASSWORD = "s3cr3t-P4ss"
WRONG_PASSWORD = "wr0ng-Pa55w0rd"


@dataclass(frozen=True)
class PasswordRole:
    name: str
    host: str
    port: int

    def url(self, database: str, password: str = PASSWORD, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.name}:{password}@{self.host}:{self.port}/{database}"


def _admin(server) -> psycopg.Connection:
    return psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True)


@contextmanager
def _role_with_password(server, password: str) -> Iterator[PasswordRole]:
    name = f"pw_{uuid.uuid4().hex[:10]}"
    with _admin(server) as admin:
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
        original = hba.read_text()
        rules = "".join(f"host all {name} {net} scram-sha-256\n" for net in ("127.0.0.1/32", "::1/128"))
        hba.write_text(rules + original)
        try:
            admin.execute("SELECT pg_reload_conf()")
            admin.execute("SET password_encryption = 'scram-sha-256'")
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
            for db in ("store", "mlflow"):
                admin.execute(f'CREATE DATABASE "{name}_{db}" OWNER {name}')
            yield PasswordRole(name, server.host, server.port)
        finally:
            for db in ("store", "mlflow"):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}_{db}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {name}")
            hba.write_text(original)
            admin.execute("SELECT pg_reload_conf()")


@pytest.fixture
def password_role(postgresql_server):
    with _role_with_password(postgresql_server, PASSWORD) as role:
        yield role


@pytest.fixture
def role_with_password(postgresql_server):
    """A factory: `with role_with_password("p@ss") as role: ...`."""
    return lambda password: _role_with_password(postgresql_server, password)
