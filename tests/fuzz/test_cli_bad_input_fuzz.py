"""Bad specs and dataset rows through the real `ttscale` entry point: exit code 2, one line per
problem naming the field (the first prefixed `error: `), no traceback — and the store is not
touched: not created where there was none, byte for byte unchanged where there was one."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli import ttscale

FIELD_LINE = re.compile(r"^(?:[A-Za-z_][\w\-]*|\[[^\n]*?\])(?:\.[A-Za-z_][\w\-]*|\[[^\n]*?\])*: \S")
TABLES = ("sweeps", "cells", "sweep_cells", "problems", "problem_runs", "candidates", "nodes", "verdicts")
GOOD_ROWS = [{"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)]


def spec(dataset_path: Path, **extra) -> str:
    lines = [
        "name: cli-fuzz", "models: [scripted]", "verifiers: [scripted]", "strategies: [{name: best_of_n}]",
        "budgets: [2]", f"datasets: [{{name: jsonl, path: '{dataset_path}'}}]", "shard_size: 2",
    ]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def assert_bad_input(done, source: str) -> list[str]:
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stderr.rstrip("\n").split("\n")
    assert lines[0].startswith("error: "), done.stderr
    lines[0] = lines[0].removeprefix("error: ")
    for line in lines:
        assert line.startswith(source) or FIELD_LINE.match(line), f"line names no field: {line!r}\n{done.stderr}"
    return lines


def store_state(db: Path) -> tuple[str, dict[str, int]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    finally:
        engine.dispose()
    return hashlib.sha256(db.read_bytes()).hexdigest(), counts


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A migrated SQLite store with one small sweep in it (so "unchanged" means something)."""
    root = tmp_path_factory.mktemp("cli-fuzz")
    env = {"TTSCALE_HOME": str(root / "home"), "TTSCALE_DATABASE_URL": f"sqlite:///{root / 'home' / 'ttscale.db'}"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'home' / 'mlflow.db'}"
    done = ttscale("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    rows = root / "good.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in GOOD_ROWS), encoding="utf-8")
    done = ttscale("run", "--model", "scripted", "--dataset", str(rows), "--strategy", "majority", "--n", "2", env=env, cwd=str(root), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, env, root / "home" / "ttscale.db"


BAD_SPECS = {
    "python_tag": lambda d: "name: !!python/object/apply:os.system ['touch pwned']\n",
    "bad_timestamp": lambda d: spec(d, created="2001-13-14"),
    "deep_nesting": lambda d: "name: " + "[" * 3000 + "\n",
    "budget_too_big": lambda d: spec(d).replace("budgets: [2]", "budgets: [2, 100000]"),
    "many_problems": lambda d: (
        spec(d).replace("strategies: [{name: best_of_n}]", "strategies: [{name: beam_search, beam_width: 3}, {name: nope}]") + "colour: blue\n"
    ),
    "bad_row": lambda d: spec(d.with_name("bad.jsonl")),
}


@pytest.mark.parametrize("case", ["python_tag", "bad_timestamp", "deep_nesting", "many_problems"])
def test_sweep_validate_without_a_store_creates_none(tmp_path, case):
    dataset = tmp_path / "good.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in GOOD_ROWS), encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(BAD_SPECS[case](dataset), encoding="utf-8")
    home = tmp_path / "home"
    done = ttscale("sweep", "validate", str(path), env={"TTSCALE_HOME": str(home), "TTSCALE_DATABASE_URL": ""}, cwd=str(tmp_path))
    lines = assert_bad_input(done, str(path))
    assert not (tmp_path / "pwned").exists()
    assert not (home / "ttscale.db").exists()
    if case == "many_problems":
        assert len(lines) >= 2 and any(line.startswith("colour: ") for line in lines), lines


@pytest.mark.parametrize("case", ["python_tag", "budget_too_big", "bad_row"])
def test_sweep_run_of_bad_input_leaves_the_store_unchanged(home, case):
    root, env, db = home
    (root / "bad.jsonl").write_text(json.dumps(GOOD_ROWS[0]) + "\n" + '{"problem": "no answer here"}\n', encoding="utf-8")
    path = root / f"{case}.yaml"
    path.write_text(BAD_SPECS[case](root / "good.jsonl"), encoding="utf-8")
    before = store_state(db)
    done = ttscale("sweep", "run", str(path), env=env, cwd=str(root), timeout=600)
    lines = assert_bad_input(done, str(path))
    if case == "bad_row":
        assert lines == [f"datasets[0].path: {root / 'bad.jsonl'}:2: missing field `answer` (has: problem)"]
    assert store_state(db) == before


def test_run_of_bad_dataset_rows_leaves_the_store_unchanged(home):
    root, env, db = home
    rows = root / "nested.jsonl"
    rows.write_bytes(b'{"problem": "p", "answer": ' + b"[" * 50_000 + b"}\n")
    before = store_state(db)
    done = ttscale("run", "--model", "scripted", "--dataset", str(rows), "--verifier", "scripted", env=env, cwd=str(root))
    assert_bad_input(done, str(rows))
    assert done.stderr.strip() == f"error: {rows}:1: not valid JSON (nested too deeply)"
    assert store_state(db) == before
