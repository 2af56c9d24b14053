"""A read-only PostgreSQL role for the dashboard and analysts (docs/store.md has the SQL).

The role may connect and SELECT from every table of the store's schema, now and — through
default privileges of the role that runs this, which must be the one that runs migrations —
from tables later migrations create. It owns nothing, so it can neither write nor drop.
"""

from __future__ import annotations

import re

from psycopg import sql
from sqlalchemy.engine import Engine

from ttscale.errors import StoreError
from ttscale.store.engine import redact_url, transaction

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def create_reader_role(engine: Engine, name: str, password: str, *, schema: str = "public") -> None:
    """Create (or update the password of) login role `name` with read-only access.

    Commits its own transaction: an administrative one-off, not part of a write. Needs a
    PostgreSQL store and a role allowed to CREATE ROLE. On SQLite, open the file read-only
    instead (`sqlite:///file:PATH?mode=ro&uri=true`).
    """
    if engine.dialect.name != "postgresql":
        raise StoreError(
            f"read-only roles need PostgreSQL; store {redact_url(engine.url)} is {engine.dialect.name}: "
            "open a SQLite store read-only with sqlite:///file:PATH?mode=ro&uri=true"
        )
    if not _ROLE_NAME.fullmatch(name):
        raise StoreError(f"reader role name: must match [a-z_][a-z0-9_]{{0,62}}, got {name!r}")
    role, nsp = sql.Identifier(name), sql.Identifier(schema)
    with transaction(engine) as conn:
        dbapi = conn.connection.dbapi_connection
        with dbapi.cursor() as cur:
            cur.execute("SELECT current_database()")
            database = sql.Identifier(cur.fetchone()[0])
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            # DDL takes no bind parameters: the password goes in as a quoted literal.
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password)))
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA {nsp} TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {nsp} TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {nsp} GRANT SELECT ON TABLES TO {role}",
            ):
                cur.execute(sql.SQL(statement).format(db=database, role=role, nsp=nsp))
