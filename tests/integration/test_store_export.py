"""Exporting a sweep: every table in every format, the manifest, and paths that cannot escape."""

from __future__ import annotations

import json
import os

import polars as pl
import pytest

from ttscale import store
from ttscale.errors import StoreError
from ttscale.store.export import resolve_sweep
from tests.integration.test_store_samples import sample_outcome, sample_sweep

RAW_SPEC = "name: ../../etc/evil\nmodels: [meta-llama/Llama-3.2-1B-Instruct]\n"


@pytest.fixture
def stored(store_url):
    """A sweep named like a path traversal, with two cells and one written shard."""
    engine = store.make_engine(store_url)
    spec = sample_sweep(name="../../etc/evil")
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, RAW_SPEC, "alice")
        small, big = sorted(spec.cells(), key=lambda c: c.n)
        store.register_cell(conn, big, sweep_id=sweep_id)
        store.register_cell(conn, small, sweep_id=sweep_id, source_cell_id=big.cell_id)
        store.write_shard(conn, sample_outcome(big.cell_id, texts=("a\x00\n\n", "b\n\n", "c", "d")))
    yield engine, sweep_id, big
    engine.dispose()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_writes_every_table_and_the_manifest(stored, tmp_path, fmt):
    engine, sweep_id, big = stored
    out = tmp_path / "out"
    with engine.connect() as conn:
        paths = store.export_sweep(conn, sweep_id, out, fmt)
    names = sorted(p.name for p in paths)
    assert names == sorted([f"{t}.{fmt}" for t in ("cells", "problems", "problem_runs", "candidates", "nodes", "verdicts")] + ["sweep.json"])
    assert sorted(os.listdir(out)) == names  # no temporary files left behind
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["spec"] == RAW_SPEC and manifest["spec_hash"].startswith(sweep_id)
    assert manifest["files"]["nodes"] == {"path": f"nodes.{fmt}", "rows": 10}
    read = {"parquet": pl.read_parquet, "csv": pl.read_csv, "jsonl": pl.read_ndjson}[fmt]
    nodes = read(out / f"nodes.{fmt}")
    cells = read(out / f"cells.{fmt}")
    assert nodes.height == 10 and nodes["text"][0] == "a\x00\n\n"
    assert cells.height == 2 and set(cells["cell_id"]) == {big.cell_id, *[c for c in cells["cell_id"] if c != big.cell_id]}
    assert read(out / f"candidates.{fmt}")["text"][0] == "a\x00\n\nb\n\nc"
    assert read(out / f"verdicts.{fmt}").height == 8
    assert read(out / f"problems.{fmt}").height == 2


def test_export_names_files_only_from_constants(stored, tmp_path):
    engine, sweep_id, _ = stored
    root = tmp_path / "exports"
    out = root / "out"
    with engine.connect() as conn:
        store.export_sweep(conn, sweep_id, out, "jsonl")
    everything = {p.resolve() for p in root.rglob("*")}
    assert all(p == out or p.parent == out for p in everything), everything
    assert len(everything) == 8


@pytest.mark.parametrize("bad", ["../../etc/passwd", "0123456789abcdef/../x", "ABCDEF0123456789", ""])
def test_export_rejects_ids_that_are_not_sweep_ids(stored, tmp_path, bad):
    engine, _, _ = stored
    with engine.connect() as conn, pytest.raises(StoreError, match="16 hex"):
        store.export_sweep(conn, bad, tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()


def test_export_does_not_follow_a_planted_symlink(stored, tmp_path):
    engine, sweep_id, _ = stored
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("keep me")
    (out / "nodes.csv").symlink_to(victim)
    with engine.connect() as conn:
        store.export_sweep(conn, sweep_id, out, "csv")
    assert victim.read_text() == "keep me"
    assert not (out / "nodes.csv").is_symlink()


def test_sweeps_resolve_by_id_or_unique_name(stored):
    engine, sweep_id, _ = stored
    with store.transaction(engine) as conn:
        assert resolve_sweep(conn, sweep_id) == sweep_id
        assert resolve_sweep(conn, "../../etc/evil") == sweep_id
        with pytest.raises(StoreError, match="no sweep"):
            resolve_sweep(conn, "nosuch")
        other = sample_sweep(name="../../etc/evil").model_copy(update={"seeds": [0, 1]})
        store.register_sweep(conn, other, "x", "bob")
        with pytest.raises(StoreError, match="ambiguous"):
            resolve_sweep(conn, "../../etc/evil")


def test_unknown_format_is_refused(stored, tmp_path):
    engine, sweep_id, _ = stored
    with engine.connect() as conn, pytest.raises(StoreError, match="parquet, csv, jsonl"):
        store.export_sweep(conn, sweep_id, tmp_path, "xlsx")
