"""Values from the dashboard's filters (query parameters: sweep, cell, problem, dataset) reach
the store only as bound parameters: hostile values match nothing and every table is intact,
on SQLite and PostgreSQL (where large reads run as COPY (SELECT ...) with client-side bound
literals). Also a static check that neither the dashboard nor the readers build SQL from
strings."""

from __future__ import annotations

import ast
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from ttscale import store
from ttscale.errors import StoreError
from ttscale.store.export import resolve_sweep
from tests.integration.test_store_samples import store_sample_sweep
from tests.security import dashboard_data

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("sweeps", "cells", "sweep_cells", "problems", "problem_runs", "candidates", "nodes", "verdicts")
HOSTILE = [
    "'; DROP TABLE candidates; --",
    "x' OR '1'='1",
    "x') OR ('1'='1",
    "1); DROP TABLE verdicts; --",
    "\\'; DROP TABLE nodes; --",
    "$$; DROP TABLE sweeps; $$",
    "'); TRUNCATE problems; --",
    "%(cell_id_1)s",
    "%s%s%s",
    "{0}",
    "\"; DELETE FROM cells; --",
    "test/algebra/1.json' --",
    "*/ DROP TABLE nodes; /*",
]
# Only for the store's problem readers, whose problem ids and dataset names are encoded: a lone
# surrogate cannot come from a browser (Streamlit's cache cannot even hash one), and the pages
# never pass an id from the URL on unchecked (test below), so a NUL in a sweep or cell id
# (PostgreSQL refuses NUL in text) cannot reach a query from the browser either.
LIBRARY_ONLY = ["x\ud800'; DROP TABLE nodes; --", "x\x00'; DROP TABLE nodes; --"]


@pytest.fixture
def stored(store_url):
    engine = store.make_engine(store_url)
    sweep_id, cell = store_sample_sweep(engine)
    yield store_url, engine, sweep_id, cell
    engine.dispose()


def snapshot(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def test_hostile_filter_values_match_nothing_and_change_nothing(stored):
    url, engine, sweep_id, cell = stored
    before = snapshot(engine)
    assert before["candidates"] == 4 and before["nodes"] == 10
    data = dashboard_data.load()
    for value in HOSTILE + LIBRARY_ONLY:
        if value in LIBRARY_ONLY:
            _readers_find_nothing(engine, cell, value, as_cell_id=False)
            continue
        assert data.cells(url, value).height == 0, value
        assert data.cell_problems(url, value).height == 0, value
        assert data.cell_runs(url, (value, cell.cell_id + value)).height == 0, value
        assert data.analyse(url, (value,)) is None, value
        with pytest.raises(StoreError):
            data.problem_view(url, value, value, value)
        with pytest.raises(StoreError):
            data.problem_view(url, cell.cell_id, value, "math500")
        with pytest.raises(StoreError):
            data.export_sweep_zip(url, value, "csv")
        archive = zipfile.ZipFile(io.BytesIO(data.export_cell_zip(url, value, "csv")))
        assert pl.read_csv(io.BytesIO(archive.read("candidates.csv"))).height == 0
        _readers_find_nothing(engine, cell, value)
        assert snapshot(engine) == before, value
    # The real values still work: nothing was dropped or emptied.
    data.clear()
    assert snapshot(engine) == before
    assert data.cells(url, sweep_id)["cell_id"].to_list() == [cell.cell_id]
    assert data.problem_view(url, cell.cell_id, "test/algebra/1.json", "math500").candidates.height == 2


def _readers_find_nothing(engine, cell, value: str, *, as_cell_id: bool = True) -> None:
    """Every reader, `value` as each filter it takes. Cell ids are 16 hex characters written by
    ttscale itself; problem ids and dataset names come from datasets and are encoded
    (`store.encoding`), so only they are tried with a lone surrogate (`as_cell_id=False`)."""
    with store.connect(engine) as conn:
        if as_cell_id:
            assert store.read_candidates(conn, [value], with_text=True).height == 0
            assert store.read_nodes(conn, value, value).height == 0
            assert store.read_verdicts(conn, [value]).height == 0
            assert store.read_problem_runs(conn, [value]).height == 0
            assert store.done_problem_ids(conn, value) == set()
        assert store.read_nodes(conn, cell.cell_id, value).height == 0
        assert store.read_problems(conn, dataset=value, problem_ids=[value]).height == 0
        assert store.read_problems(conn, dataset="math500", problem_ids=[value]).height == 0
        with pytest.raises(StoreError):
            store.read_problem_result(conn, cell.cell_id, value)
        with pytest.raises(StoreError):
            resolve_sweep(conn, value)


def _sql_calls_built_from_strings(path: Path) -> list[str]:
    """Calls of text()/exec_driver_sql()/execute()/copy() whose SQL argument is an f-string,
    a % or + expression, or a .format() call."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in {"text", "exec_driver_sql", "execute", "executemany", "copy", "read_database"}:
            continue
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) and node.func.value.id == "st":
            continue  # Streamlit's st.text shows text; the dashboard imports no SQL library (asserted below)
        arg = node.args[0]
        built = isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add))
        built |= isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format"
        if built:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_dashboard_and_readers_build_no_sql_from_strings():
    dashboard = sorted((ROOT / "dashboard").rglob("*.py"))
    for path in dashboard:  # the dashboard reaches the store only through ttscale.store
        source = path.read_text(encoding="utf-8")
        assert "sqlalchemy" not in source and "psycopg" not in source, path
        assert not _sql_calls_built_from_strings(path)
    read = ROOT / "platform" / "ttscale" / "store" / "read.py"
    # One f-string is allowed: COPY (<compiled parameterised select>) TO STDOUT, whose values go
    # in as psycopg-quoted literals (the PostgreSQL half of the test above).
    assert not _sql_calls_built_from_strings(read)
    source = read.read_text(encoding="utf-8")
    assert 'statement = f"COPY ({compiled.string}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)"' in source


@pytest.mark.parametrize("page", ["findings", "problems", "audit", "frontiers"])
def test_pages_take_ids_from_the_url_only_when_they_are_stored(stored, monkeypatch, page):
    """Query parameters are matched against the stored sweeps, cells and problems before any
    query; an unknown or hostile value falls back to the first real choice."""
    from streamlit.testing.v1 import AppTest

    url, engine, sweep_id, cell = stored
    before = snapshot(engine)
    monkeypatch.setenv("TTSCALE_DASHBOARD_DATABASE_URL", url)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    for key in ("sweep", "cell", "problem"):
        at.query_params[key] = "'; DROP TABLE candidates; --\x00"
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["sweep"] == sweep_id
    if page == "problems":
        assert at.query_params["cell"] == cell.cell_id and at.query_params["problem"] == "test/algebra/1.json"
    assert snapshot(engine) == before
