"""Which store errors are worth retrying: a server that dropped out may come back, a wrong
password or a missing database will not (retrying those only delays a clear error)."""

from __future__ import annotations

import psycopg
import pytest

from ttscale.store.engine import is_transient


@pytest.mark.parametrize(
    "message",
    ['connection failed: FATAL:  password authentication failed for user "ttscale"',
     'connection failed: FATAL:  database "nosuch" does not exist',
     'connection failed: FATAL:  no pg_hba.conf entry for host "10.0.0.5", user "x"'],
)
def test_authentication_and_missing_database_are_not_retried(message):
    assert not is_transient(psycopg.OperationalError(message))


@pytest.mark.parametrize(
    "message",
    ["connection failed: Connection refused", "server closed the connection unexpectedly",
     "FATAL:  the database system is shutting down"],
)
def test_outages_are_retried(message):
    assert is_transient(psycopg.OperationalError(message))
