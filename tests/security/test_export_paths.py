"""Exports cannot escape their folder: a sweep named like a path (`../../etc`, `/etc/passwd`)
exports by `ttscale export NAME` into `exports/<16-hex id>` (default) or `--out DIR`, and
nothing is written anywhere else; the dashboard's zip holds constant names only."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile

import pytest

from ttscale import store
from tests.cli import ttscale
from tests.integration.test_store_samples import sample_outcome, sample_sweep
from tests.security import dashboard_data

NAMES = ["../../etc", "/etc/passwd", "..", "../../../../../../tmp/evil", "a/../../b", "~root/.ssh/authorized_keys", "sweep.json", "C:\\Windows\\x"]
CONSTANT_FILES = {"cells", "problems", "problem_runs", "candidates", "nodes", "verdicts"}


@pytest.fixture
def stored(tmp_path):
    """A SQLite store with one sweep per hostile name, each with one written shard."""
    url = f"sqlite:///{tmp_path / 'store' / 'ttscale.db'}"
    engine = store.make_engine(url, create_dirs=True)
    store.upgrade(engine)
    ids = {}
    for i, name in enumerate(NAMES):
        spec = sample_sweep(name=name)
        spec = spec.model_copy(update={"seeds": [i]})
        with store.transaction(engine) as conn:
            ids[name] = store.register_sweep(conn, spec, f"name: {json.dumps(name)}\n", "tests")
            cell = spec.cells()[-1]
            store.register_cell(conn, cell, sweep_id=ids[name])
            store.write_shard(conn, sample_outcome(cell.cell_id))
    engine.dispose()
    return url, ids


def tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_export_by_a_path_like_name_stays_in_its_folder(stored, tmp_path):
    url, ids = stored
    fmt = "jsonl"
    work = tmp_path / "work"
    (work / "deep" / "er").mkdir(parents=True)
    cwd = work / "deep" / "er"
    before = tree(tmp_path)
    written = set()
    for name, sweep_id in ids.items():
        done = ttscale("export", name, "--format", fmt, "--db", url, cwd=str(cwd))
        assert done.returncode == 0, (name, done.stderr)
        folder = cwd / "exports" / sweep_id
        assert re.fullmatch(r"[0-9a-f]{16}", sweep_id)
        paths = [line for line in done.stdout.splitlines() if line]
        assert {os.path.dirname(p) for p in paths} == {str(folder.resolve())}, paths
        assert {os.path.basename(p) for p in paths} == {f"{t}.{fmt}" for t in CONSTANT_FILES} | {"sweep.json"}
        assert json.loads((folder / "sweep.json").read_text())["name"] == name  # the name is data, never a path
        written |= {str(p.relative_to(tmp_path)) for p in folder.rglob("*")} | {str(folder.relative_to(tmp_path))}
    new = tree(tmp_path) - before
    allowed = written | {"work/deep/er/exports"}
    assert new <= allowed | {p for p in new if p.startswith("store/")}, sorted(new - allowed)
    assert not any(p.startswith("store/") and "etc" in p for p in new)


def test_export_with_out_writes_only_there(stored, tmp_path):
    url, ids = stored
    out = tmp_path / "chosen"
    before = tree(tmp_path)
    done = ttscale("export", "../../etc", "--out", str(out), "--db", url, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    new = tree(tmp_path) - before
    assert new == {"chosen"} | {f"chosen/{t}.parquet" for t in CONSTANT_FILES} | {"chosen/sweep.json"} | {p for p in new if p.startswith("store/")}


def test_dashboard_export_zip_holds_constant_names(stored):
    url, ids = stored
    data = dashboard_data.load()
    for sweep_id in ids.values():
        names = zipfile.ZipFile(io.BytesIO(data.export_sweep_zip(url, sweep_id, "csv"))).namelist()
        assert set(names) == {f"{t}.csv" for t in CONSTANT_FILES} | {"sweep.json"}
