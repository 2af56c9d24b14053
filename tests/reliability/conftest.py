"""Fixtures of the fault tests: a PostgreSQL cluster of the test's own (restarted by the test),
servers the test stops and starts (always stopped at teardown), a database for a Prefect
server, and a tiny tmpfs (a disk that fills up)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.faults import PgCluster, ServerProcess, mlflow_server, prefect_server


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A running PostgreSQL cluster only this test uses: it may stop and restart it."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of `size` on `path`; False where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        got = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return got.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 4 MiB tmpfs (a disk the test can fill), or None where mount is not permitted (or
    RELIABILITY_NO_MOUNT=1 asks for the max_page_count fallback)."""
    mnt = tmp_path / "disk"
    mounted = not os.environ.get("RELIABILITY_NO_MOUNT") and mount_tmpfs(mnt, "4m")
    try:
        yield mnt if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


class Servers:
    """Starts servers for one test; every one is stopped when the test ends, pass or fail."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServerProcess] = []

    def prefect(self, **settings: str) -> ServerProcess:
        server = prefect_server(self.tmp_path, **settings)
        self.started.append(server)
        return server

    def mlflow(self) -> ServerProcess:
        server = mlflow_server(self.tmp_path)
        self.started.append(server)
        return server


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    registry = Servers(tmp_path)
    try:
        yield registry
    finally:
        for server in reversed(registry.started):
            server.stop()


@pytest.fixture
def prefect_database_url(postgresql_server) -> Iterator[str]:
    """A new database on the session's PostgreSQL for a Prefect server (asyncpg URL)."""
    from tests.plugins.postgres import _admin

    name = f"prefect_{uuid.uuid4().hex[:12]}"
    with _admin(postgresql_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{postgresql_server.user}@{postgresql_server.host}:{postgresql_server.port}/{name}"
    finally:
        with _admin(postgresql_server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
