"""`ttscale db ...` and `ttscale export` through the real entry point, as a user runs them."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ttscale import store
from ttscale.store.migrate import current_revision
from tests.cli import ttscale
from tests.integration.test_store_samples import sample_sweep, store_sample_sweep

HEAD = store.head_revision()  # the newest migration: what `db upgrade` reaches


def current(url: str) -> str | None:
    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def test_db_upgrade_creates_the_store_and_export_writes_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'ttscale.db'}"
    env = {"TTSCALE_HOME": str(tmp_path / "home")}
    got = ttscale("db", "upgrade", "--db", url, env=env)
    assert got.returncode == 0, got.stderr
    assert f"at revision {HEAD}" in got.stdout
    assert ttscale("db", "check", "--db", url, env=env).returncode == 0

    engine = store.make_engine(url)
    sweep_id, _ = store_sample_sweep(engine, "cli-test")
    engine.dispose()
    spec = sample_sweep()

    out = tmp_path / "export"
    got = ttscale("export", spec.name, "--format", "csv", "--out", str(out), "--db", url, env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads((out / "sweep.json").read_text())["sweep_id"] == sweep_id
    assert pl.read_csv(out / "candidates.csv").height == 4


def test_db_url_comes_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    got = ttscale("db", "upgrade", env={"TTSCALE_DATABASE_URL": url})
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "env.db").is_file()
    assert HEAD in ttscale("db", "current", env={"TTSCALE_DATABASE_URL": url}).stdout


def test_db_check_fails_on_an_unmigrated_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    got = ttscale("db", "check", "--db", url)
    assert got.returncode == 1
    assert got.stderr.strip() == f"error: store {url} is at schema revision none, code expects {HEAD}: run `ttscale db upgrade`"


def test_downgrade_needs_confirmation_and_then_drops_the_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'ttscale.db'}"
    assert ttscale("db", "upgrade", "--db", url).returncode == 0
    refused = ttscale("db", "downgrade", "base", "--db", url)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert current(url) == HEAD
    done = ttscale("db", "downgrade", "base", "--yes", "--db", url)
    assert done.returncode == 0, done.stderr
    assert "at revision none" in done.stdout and current(url) is None


def test_bad_store_url_is_one_line_without_password():
    got = ttscale("db", "upgrade", "--db", "postgresql+psycopg://admin:hunter2@127.0.0.1:1/db")
    assert got.returncode == 1
    assert got.stderr.count("\n") == 1 and "Traceback" not in got.stderr
    assert "hunter2" not in got.stderr and "admin:***@127.0.0.1:1/db" in got.stderr


def test_export_of_unknown_sweep_fails_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'ttscale.db'}"
    assert ttscale("db", "upgrade", "--db", url).returncode == 0
    got = ttscale("export", "nosuch", "--db", url, "--out", str(tmp_path / "out"))
    assert got.returncode == 1
    assert got.stderr.strip() == "error: no sweep with id or name 'nosuch'"
    assert not (tmp_path / "out").exists()


@pytest.mark.postgres
def test_db_upgrade_and_check_on_postgresql(fresh_postgres_db):
    got = ttscale("db", "upgrade", "--db", fresh_postgres_db)
    assert got.returncode == 0, got.stderr
    assert current(fresh_postgres_db) == HEAD
    checked = ttscale("db", "check", "--db", fresh_postgres_db)
    assert checked.returncode == 0 and f"ok, at revision {HEAD}" in checked.stdout, checked.stderr
