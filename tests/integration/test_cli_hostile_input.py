"""Hostile but realistic input through the real entry point: every misuse is one `error:` line
with exit code 2 (or 1 for a runtime refusal), nothing hangs, nothing is stored, and text from a
spec reaches the terminal as written.

Covers the CLI's usage errors (unknown option, missing argument, bad value: typer raises its
vendored click's exceptions), special files named as datasets or specs (a FIFO would block the
open forever, `/dev/zero` never ends), oversized lines, grids past `max_cells`, duplicate YAML
keys, `true` for a number, rich markup in a sweep name and a dataset path, `export --out` onto a
file or an unwritable place, and CSV cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from tests.cli import ttscale

SPEC = """\
name: {name}
models: [scripted]
verifiers: [scripted]
strategies: [{{name: best_of_n}}]
budgets: [2]
datasets: [{{name: jsonl, path: '{path}'}}]
"""


@pytest.fixture
def env(tmp_path):
    return {"TTSCALE_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


@pytest.fixture
def rows(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"id": "q1", "problem": "1 + 1?", "answer": "2"}) + "\n", encoding="utf-8")
    return path


def one_error(got, code: int = 2) -> str:
    """The one `error:` line a failed command printed (exit `code`, no traceback)."""
    assert got.returncode == code, (got.returncode, got.stdout[-2000:], got.stderr[-2000:])
    lines = [ln for ln in got.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), got.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args,message,usage",
    [
        (["--bogus"], "No such option: --bogus", "usage: ttscale [OPTIONS] COMMAND"),
        (["report", "--all", "x"], "No such option: --all", "usage: ttscale report"),
        (["run", "--nonsense"], "No such option: --nonsense", "usage: ttscale run"),
        (["sweep", "status"], "Missing argument 'SWEEP'", "usage: ttscale sweep status"),
        (["report"], "Missing argument", "usage: ttscale report"),
        (["run", "--n", "abc"], "Invalid value for '--n'", "usage: ttscale run"),
        (["dashboard", "--port", "99999"], "Invalid value for '--port'", "usage: ttscale dashboard"),
        (["sweep", "frobnicate"], "No such command 'frobnicate'", "usage: ttscale sweep"),
    ],
)
def test_usage_errors_are_one_line_with_the_usage_hint(env, args, message, usage):
    line = one_error(ttscale(*args, env=env))
    assert message in line and usage in line and "--help" in line, line


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_special_files_as_datasets_and_specs_are_refused_at_once(env, tmp_path, kind):
    special = {"fifo": tmp_path / "pipe.jsonl", "device": Path("/dev/zero"), "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(special)
    reason = {"fifo": "is a FIFO", "device": "not a regular file", "directory": "is a directory"}[kind]
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="special", path=special), encoding="utf-8")
    # `timeout` in the helper would fail the test on a hang; each must answer long before
    assert reason in one_error(ttscale("sweep", "validate", str(spec), env=env, timeout=120))
    if special.suffix == ".jsonl":  # `ttscale run --dataset` takes a path only by its suffix
        assert reason in one_error(ttscale("run", "--model", "scripted", "--verifier", "scripted", "--dataset", str(special), env=env, timeout=120))
    assert reason in one_error(ttscale("sweep", "validate", str(special), env=env, timeout=120))
    assert not (tmp_path / "home" / "ttscale.db").exists()  # validation stored nothing


def test_a_line_longer_than_the_limit_is_refused(env, tmp_path):
    big = tmp_path / "big.jsonl"
    with big.open("w") as f:
        f.write('{"problem": "' + "x" * (17 << 20) + '", "answer": "1"}\n')
    assert "big.jsonl:1: line longer than 16 MiB" in one_error(ttscale("run", "--model", "scripted", "--verifier", "scripted", "--dataset", str(big), env=env))


@pytest.mark.parametrize(
    "extra,message",
    [
        ("seeds: [" + ", ".join(map(str, range(20_000))) + "]", "the grid has up to 20,000 cells, more than max_cells=10,000"),
        ("budgets: [4]", "duplicate key 'budgets'"),
        ("seeds: [true]", "seeds: true/false is not a valid value here"),
    ],
)
def test_bad_grids_are_refused_before_they_expand(env, rows, tmp_path, extra, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="grid", path=rows) + extra + "\n", encoding="utf-8")
    assert message in one_error(ttscale("sweep", "validate", str(spec), env=env, timeout=120))


def test_booleans_are_not_budgets(env, rows, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="grid", path=rows).replace("budgets: [2]", "budgets: [true]"), encoding="utf-8")
    assert "budgets: true/false is not a valid value here" in one_error(ttscale("sweep", "validate", str(spec), env=env))


def test_markup_in_a_sweep_name_and_a_dataset_path_reaches_the_terminal_as_written(env, tmp_path):
    name = "oops [/bold] x [link=http://127.0.0.1:9/]L[/link]"
    data = tmp_path / "[click] data.jsonl"
    data.write_text(json.dumps({"id": "q1", "problem": "1 + 1?", "answer": "2"}) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name=json.dumps(name), path=data), encoding="utf-8")
    # a colour terminal as rich sees one: markup would become styles and OSC-8 hyperlinks
    colour = {**env, "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "300"}
    for args in (("sweep", "validate", str(spec)), ("sweep", "run", str(spec)), ("sweep", "status", name)):
        got = ttscale(*args, env=colour)
        assert got.returncode == 0, got.stderr[-2000:]
        assert args[1] == "run" or name in got.stdout, got.stdout[-3000:]  # `sweep run` shows progress, not the name
        assert "\x1b]8;" not in got.stdout and "Traceback" not in got.stderr
    assert "[click] data.jsonl" in got.stdout  # the dataset column of `sweep status`


def test_export_out_onto_a_file_or_an_unwritable_place_is_one_line(env, rows, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="exported", path=rows), encoding="utf-8")
    assert ttscale("sweep", "run", str(spec), env=env).returncode == 0
    a_file = tmp_path / "taken"
    a_file.write_text("keep me")
    assert "is a file; give a folder" in one_error(ttscale("export", "exported", "--out", str(a_file), env=env))
    assert a_file.read_text() == "keep me"
    assert "--out: cannot write to '/proc/x'" in one_error(ttscale("export", "exported", "--out", "/proc/x", env=env))


def test_csv_exports_do_not_hand_formulas_to_a_spreadsheet(env, tmp_path):
    data = tmp_path / "rows.jsonl"
    formula = '=HYPERLINK("http://127.0.0.1:9/x","click")'
    data.write_text(json.dumps({"id": "@cmd", "problem": formula, "answer": "-5"}) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(name="formulas", path=data), encoding="utf-8")
    assert ttscale("sweep", "run", str(spec), env=env).returncode == 0
    out = tmp_path / "csv"
    assert ttscale("export", "formulas", "--format", "csv", "--out", str(out), env=env).returncode == 0
    with (out / "problems.csv").open(newline="", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert row["text"] == "'" + formula and row["problem_id"] == "'@cmd"
    assert row["answer"] == "-5"  # a plain number is not a formula: kept as it is
    report = ttscale("report", "formulas", "--format", "csv", "--table", "accuracy", env=env)
    assert report.returncode == 0 and "\n=" not in report.stdout and not report.stdout.startswith("=")
