"""Bulk inserts of many rows in the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

On PostgreSQL the rows go through psycopg 3's `COPY ... FROM STDIN (FORMAT BINARY)` on the
DBAPI connection under the SQLAlchemy Connection — the same connection, so the same open
transaction: a rollback removes them with everything else. COPY was ~5× executemany here
(benchmarks/store_write.py). Binary format needs each value's exact PostgreSQL type, which
is derived from the table's SQLAlchemy column types, so it cannot drift from the schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ttscale.store.schema import UTCDateTime

_SQLITE_BATCH = 10_000  # rows per executemany call: bounds the memory of the dict rows

# SQLAlchemy type → the PostgreSQL type name psycopg's binary dumper must use.
_PG_TYPES: tuple[tuple[type, str], ...] = (
    (sa.Boolean, "bool"),
    (sa.BigInteger, "int8"),
    (sa.Integer, "int4"),  # after BigInteger: BigInteger subclasses Integer
    (sa.Double, "float8"),
    (sa.Float, "float8"),
    (sa.String, "text"),  # Text is a String; varchar accepts text's binary form
    (UTCDateTime, "timestamptz"),  # COPY skips the type's naive-value check: pass aware datetimes
)


def pg_copy_type(column: sa.Column) -> str:
    for sa_type, name in _PG_TYPES:
        if isinstance(column.type, sa_type):
            return name
    raise TypeError(f"no COPY type for {column.table.name}.{column.name} ({column.type!r})")


def bulk_insert(conn: Connection, table: sa.Table, rows: Iterable[tuple]) -> int:
    """Insert `rows` (tuples in `table.columns` order) and return how many were inserted.

    Plain inserts: a duplicate key raises (the writer only bulk-inserts rows of problems it
    has just claimed, so a duplicate means a bug, and the transaction must fail)."""
    if conn.dialect.name == "postgresql":
        return _copy_rows(conn, table, rows)
    return _executemany(conn, table, rows)


def _copy_rows(conn: Connection, table: sa.Table, rows: Iterable[tuple]) -> int:
    names = [c.name for c in table.columns]
    statement = f'COPY {table.name} ({", ".join(names)}) FROM STDIN (FORMAT BINARY)'  # identifiers from our schema only
    dbapi = conn.connection.dbapi_connection  # the psycopg connection of this very transaction
    count = 0
    with dbapi.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types([pg_copy_type(c) for c in table.columns])
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _executemany(conn: Connection, table: sa.Table, rows: Iterable[tuple]) -> int:
    keys = [c.key for c in table.columns]
    insert = table.insert()
    it = iter(rows)
    count = 0
    while batch := list(islice(it, _SQLITE_BATCH)):
        conn.execute(insert, [dict(zip(keys, row, strict=True)) for row in batch])
        count += len(batch)
    return count
