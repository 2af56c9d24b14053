"""The CLI's progress display and log-file naming, without running anything: shard events in,
lines out (the entry-point behaviour is in tests/integration/test_terminal_output.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from ttscale.cli.progress import SweepDisplay, cell_labels, eta, short_message
from ttscale.cli.terminal import log_path_for, width_of
from ttscale.planning import dataset_key, plan_sweep
from ttscale.runner import ShardEvent
from ttscale.spec import parse_sweep


def _plan(done: dict | None = None):
    spec = parse_sweep({
        "name": "display", "models": ["scripted"], "verifiers": ["arithmetic"],
        "strategies": [{"name": "best_of_n"}, {"name": "beam_search", "beam_width": 2}], "budgets": [2, 4],
        "datasets": [{"name": "arith", "limit": 5}], "seeds": [0], "shard_size": 3,
    })  # fmt: skip
    return plan_sweep(spec, {dataset_key(spec.datasets[0]): [f"arith-{i}" for i in range(5)]}, done=done)


def _piped() -> Console:
    return Console(file=io.StringIO(), width=80, color_system=None)


def test_labels_name_what_differs_between_running_cells():
    plan = _plan()
    assert cell_labels(plan.running_cells) == ["best_of_n n=4", "beam_search n=2", "beam_search n=4"]


def test_piped_display_prints_one_line_per_finished_shard_counting_from_what_was_stored():
    plan = _plan()
    bon = next(c.cell_id for c in plan.running_cells if c.cell.strategy.name == "best_of_n")
    partly = {bon: {"arith-0", "arith-1", "arith-2"}}
    plan = _plan(done=partly)
    out = _piped()
    with SweepDisplay(plan, out) as display:
        display(ShardEvent(bon, "loading", 2, 0.1))
        display(ShardEvent(bon, "searching", 2, 5.0, message="sampled 8 solutions for 2 problems"))
        display(ShardEvent(bon, "stored", 2, 12.5, n_written=2, n_generated_tokens=600, search_s=4.0))
        display(ShardEvent("not-in-this-plan", "stored", 3, 1.0))
    lines = out.file.getvalue().splitlines()
    assert lines == [f"best_of_n n=4 ({bon[:8]}): shard 1/1 stored, problems 5/5, 12.5 s, 150 tok/s"]
    assert (display.sweep.done, display.sweep.total) == (5, 15)  # 3 stored before + 2 now, of 3 cells x 5


def test_single_cell_line_is_the_sweep_line():
    spec = parse_sweep({
        "name": "one", "models": ["scripted"], "verifiers": ["arithmetic"], "strategies": [{"name": "best_of_n"}],
        "budgets": [2], "datasets": [{"name": "arith", "limit": 4}], "shard_size": 2,
    })  # fmt: skip
    plan = plan_sweep(spec, {dataset_key(spec.datasets[0]): [f"arith-{i}" for i in range(4)]})
    (cell,) = plan.running_cells
    display = SweepDisplay(plan, _piped())
    assert display.sweep is display.cells[cell.cell_id]
    for _ in range(2):
        display(ShardEvent(cell.cell_id, "stored", 2, 3.0, n_written=2, n_generated_tokens=100, search_s=2.0))
    assert (display.sweep.done, display.sweep.n_shards_done, display.sweep.tokens) == (4, 2, 200)  # counted once, not twice


def test_eta_and_messages():
    assert eta(0, None) == "" and eta(3, None) == "ETA –"
    assert eta(10, 6.5) == "ETA 1:05" and eta(1000, 10.0) == "ETA 2:46:40"
    assert short_message("beam search iteration 2: 8 live beams", "beam_search") == "iteration 2: 8 live beams"
    assert short_message("self-refine round 1: 4 chains", "self_refine") == "round 1: 4 chains"
    assert short_message("sampled 8 solutions for 2 problems", "best_of_n") == "sampled 8 solutions for 2 problems"


def test_log_file_names_never_collide(tmp_path):
    first = log_path_for(tmp_path, "run", now=0)
    first.write_text("")
    second = log_path_for(tmp_path, "run", now=0)
    assert first.name.startswith("run-") and first.name.endswith(".log") and second.name == first.name.replace(".log", "-2.log")


def test_width_is_80_when_piped(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    read, write = os.pipe()
    with os.fdopen(write, "w") as piped:
        assert width_of(piped) == 80
        monkeypatch.setenv("COLUMNS", "123")
        assert width_of(piped) == 123
    os.close(read)


def test_training_progress_when_piped_prints_a_stage_line_at_most_every_30_s_and_at_its_end(capsys):
    from ttscale.cli.learn import TrainingProgress

    now = [0.0]
    with TrainingProgress(clock=lambda: now[0]) as update:
        for done, t in [(1, 0.0), (2, 10.0), (3, 31.0), (4, 40.0), (5, 50.0)]:
            now[0] = t
            update("features", done, 5)
        update("heads", 6, 6)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["encoding solutions 3/5", "encoding solutions 5/5", "fitting heads 6/6"]


BUGGY_COMMAND = """
import sys
from pathlib import Path
from ttscale import cli
from ttscale.cli import terminal

@cli.app.command("buggy")
def buggy() -> None:
    terminal.to_log_file(Path(sys.argv[1]), "buggy")
    print("engine chatter")  # a library's line: to the log file
    raise KeyError("no such thing")

cli.main(["buggy"])
"""


def test_a_bug_after_the_log_file_opens_is_one_line_naming_it_and_the_log_holds_the_traceback(tmp_path):
    got = subprocess.run([sys.executable, "-c", BUGGY_COMMAND, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert got.returncode == 70, got.stderr
    lines = got.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("log: "), got.stderr
    log = Path(lines[0].removeprefix("log: "))
    assert lines[1] == f"error: unexpected KeyError: 'no such thing' (a bug in ttscale; traceback in {log})"
    assert got.stdout == ""
    text = log.read_text(encoding="utf-8")
    assert "engine chatter" in text and "Traceback (most recent call last)" in text and "KeyError: 'no such thing'" in text


def test_a_learned_verifier_shows_by_its_folder_and_fingerprint_in_labels_and_the_plan(tmp_path):
    from tests.learned_models import write_learned_model
    from ttscale.cli.sweep import print_plan

    name = write_learned_model(tmp_path / "a-rather-long-folder-path" / "model", [])
    spec = parse_sweep({
        "name": "learned", "models": ["scripted"], "verifiers": ["arithmetic", name], "strategies": [{"name": "best_of_n"}],
        "budgets": [4], "datasets": [{"name": "arith", "limit": 2}],
    })  # fmt: skip
    plan = plan_sweep(spec, {dataset_key(spec.datasets[0]): ["arith-0", "arith-1"]})
    short = f"learned:model@{name[-12:-4]}"
    assert cell_labels(plan.running_cells) == ["best_of_n n=4 verifier=arithmetic", f"best_of_n n=4 verifier={short}"]
    out = _piped()
    print_plan(out, plan)
    text = out.file.getvalue()
    assert short in text and str(tmp_path) not in text and max(map(len, text.splitlines())) <= 80
