"""`ttscale import` and `ttscale report` through the real entry point, on a SQLite store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import ttscale

TINY = str(Path(__file__).parents[1] / "data" / "search_and_learn_tiny.jsonl")
MODEL = "meta-llama/Llama-3.2-1B-Instruct"


@pytest.fixture
def store_file(tmp_path) -> str:
    from ttscale.store import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'store' / 'ttscale.db'}"
    engine = make_engine(url, create_dirs=True)
    upgrade(engine)
    engine.dispose()
    return url


def _import(url: str, *extra: str):
    return ttscale("import", TINY, "--format", "search-and-learn", "--model", MODEL, "--strategy", "best_of_n",
                   "--dataset", "math500", "--db", url, *extra)  # fmt: skip


def _cell_id(stdout: str) -> str:
    return stdout.split("imported cell ", 1)[1].split(":", 1)[0]


def test_import_then_report_gives_the_hand_counted_accuracies(store_file, tmp_path):
    got = _import(store_file)
    assert got.returncode == 0, got.stderr
    assert "4 problems written, 0 already stored; 16 candidates, n=4, dataset=math500" in got.stdout
    assert "accuracy@n=4: naive 0.500, weighted 0.750, majority 0.750, pass 1.000" in got.stdout
    # the file's own pred_weighted@4, graded by ttscale, beside ttscale's selection: they agree
    assert "published predictions" in got.stdout
    agreement = [line.split() for line in got.stdout.splitlines() if line.split()[:1] == ["weighted"]]
    assert agreement == [["weighted", "4", "4", "0.750", "0.750", "0"]]
    cell = _cell_id(got.stdout)

    again = _import(store_file)
    assert again.returncode == 0 and "0 problems written, 4 already stored" in again.stdout

    rep = ttscale("report", cell, "--format", "json", "--table", "accuracy", "--db", store_file)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert data["settings"]["mode"] == "prefix"
    acc = {(r["method"], r["n"]): r["accuracy"] for r in data["tables"]["accuracy"]}
    assert acc[("naive", 2)] == 0.25 and acc[("weighted", 4)] == 0.75 and acc[("majority", 2)] == 0.5
    assert acc[("pass", 2)] == pytest.approx((5 / 6 + 5 / 6 + 1 + 1 / 2) / 4)
    assert {r["config"] for r in data["tables"]["accuracy"]} == {"best_of_n"}

    plot = tmp_path / "frontier.png"
    md = ttscale("report", cell, "--format", "markdown", "--bins", "level", "--plot", str(plot), "--db", store_file)
    assert md.returncode == 0, md.stderr
    assert "## accuracy" in md.stdout and "| model | dataset | config | N | method | n=1 | n=2 | n=4 |" in md.stdout
    # one seed, first-n prefix: each accuracy with its Wilson interval over the 4 problems
    assert "| best_of_n | 4 | weighted | 50.0 [15.0,85.0] | 25.0 [4.6,69.9] | 75.0 [30.1,95.4] |" in md.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # level bins come from the stored problems: levels 2, 5, 3 (one problem has none)
    assert "## bins" in md.stdout and "| 5 | 1 |" in md.stdout

    table = ttscale("report", cell, "--db", store_file, "--table", "accuracy", "--mode", "bootstrap", "--draws", "4")
    assert table.returncode == 0, table.stderr
    assert "accuracy" in table.stdout and "weighted" in table.stdout

    # Every table, piped (COLUMNS unset) and at COLUMNS=80: 80 columns at most, headers whole.
    for columns in ("", "80"):
        every = ttscale("report", cell, "--db", store_file, env={"COLUMNS": columns})
        assert every.returncode == 0, every.stderr
        lines = every.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
        assert "…" not in every.stdout
        assert {"accuracy", "frontier", "verifiers", "agreement", "optimal", "single", "chosen"} <= set(every.stdout.split())


def test_bad_input_fails_in_one_line_and_stores_nothing(store_file, capsys):
    got = ttscale("import", TINY, "--format", "openai", "--model", MODEL, "--strategy", "best_of_n", "--db", store_file)
    assert got.returncode == 2
    assert got.stderr.strip() == "error: --format: unknown 'openai'; allowed: search-and-learn"
    # the same entry point in-process (a subprocess costs seconds each)
    from ttscale.cli import main

    for argv, message in [
        (["import", TINY, "--format", "search-and-learn", "--model", MODEL, "--strategy", "best_of_n",
          "--aggregation", "mean", "--db", store_file], "error: --aggregation: unknown 'mean'; allowed: last, min, prod"),
        (["report", "nosuchsweep", "--db", store_file],
         "error: SWEEP_OR_CELL: no sweep or cell 'nosuchsweep' in the store (0 sweeps, 0 cells"),
        (["report", "x", "--format", "xml", "--db", store_file],
         "error: --format: unknown 'xml'; allowed: table, json, csv, markdown"),
        (["report", "x", "--table", "everything", "--db", store_file],
         "error: --table: unknown 'everything'; allowed: findings, accuracy, bins, frontier"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message), err
        assert len(err.strip().splitlines()) == 1
