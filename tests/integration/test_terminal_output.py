"""What `ttscale run` and `ttscale sweep run` print, through the real entry point: ttscale's own
lines only, the path of a per-command log file that holds everything else (vLLM, Prefect,
MLflow), a progress display on a terminal and one line per shard when piped; `-v` puts the
libraries' lines back on the terminal."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.cli import TTSCALE, ttscale
from tests.integration.test_orchestration_vllm import _model_cache
from tests.orchestration import env_for, small_spec, sqlite_store

THIRD_PARTY_MARKS = ("INFO", "WARNING", "it/s]", "vllm", "Flow run", "Task run", "prefect", "mlflow", "Traceback")
"""Substrings of the lines vLLM, Prefect, MLflow, torch and tqdm print; none is in a ttscale line."""
SHARD_LINE = re.compile(r"^(best_of_n|beam_search) n=\d \([0-9a-f]{8}\): shard [12]/2 stored, problems [35]/5, \d+\.\d s, ([\d,]+k?|–) tok/s$")


def _log_file(stderr: str, home: Path, command: str) -> Path:
    named = [line.removeprefix("log: ") for line in stderr.splitlines() if line.startswith("log: ")]
    assert len(named) == 1, stderr
    path = Path(named[0])
    assert path.parent == home / "logs" and path.name.startswith(f"{command}-") and path.suffix == ".log"
    return path


def test_sweep_run_prints_its_own_lines_a_line_per_shard_and_logs_the_rest(tmp_path, mlflow_uri):
    home = tmp_path / "home"
    env = env_for(home, sqlite_store(tmp_path), mlflow_uri)
    env.pop("COLUMNS", None)
    got = ttscale("sweep", "run", str(small_spec(tmp_path, "quiet")), env=env)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    lines = got.stdout.splitlines() + got.stderr.splitlines()
    assert not [line for line in lines if any(mark in line for mark in THIRD_PARTY_MARKS)]
    # 3 running cells of 5 problems in shards of 3: one plain line per finished shard, nothing in between
    shard_lines = [line for line in got.stdout.splitlines() if ": shard " in line]
    assert len(shard_lines) == 6 and all(SHARD_LINE.match(line) for line in shard_lines), shard_lines
    assert "tracking: complete" in got.stdout
    plan = [line for line in got.stdout.splitlines() if "problems to run" in line]
    assert [line for line in got.stdout.splitlines() if len(line) > 80] == plan  # only the plan line is left to the terminal to wrap
    log = _log_file(got.stderr, home, "sweep-run").read_text(encoding="utf-8")
    assert "Beginning flow run" in log and "INFO prefect" in log  # Prefect's lines
    assert "INFO ttscale.runner: shard end cell=" in log  # ttscale's INFO lines are kept here


def test_verbose_puts_the_libraries_lines_back_on_the_terminal(tmp_path, mlflow_uri):
    home = tmp_path / "home"
    got = ttscale("-v", "sweep", "run", str(small_spec(tmp_path, "loud")), env=env_for(home, sqlite_store(tmp_path), mlflow_uri))
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    assert "Beginning flow run" in got.stderr and "Finished in state Completed()" in got.stderr  # Prefect
    assert "INFO ttscale.runner: shard end cell=" in got.stderr  # ttscale's own INFO lines
    assert "log: " not in got.stderr and not (home / "logs").exists()


def test_a_terminal_gets_a_live_progress_display(tmp_path, mlflow_uri):
    home = tmp_path / "home"
    env = env_for(home, sqlite_store(tmp_path), mlflow_uri)
    env.pop("COLUMNS", None)
    env["TERM"] = "xterm-256color"
    main, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    args = ["run", "--model", "scripted", "--dataset", "arith", "--limit", "4", "--n", "2", "--verifier", "arithmetic", "--shard-size", "2"]
    with subprocess.Popen([TTSCALE, *args], stdout=secondary, stderr=subprocess.PIPE, env=env) as proc:
        os.close(secondary)
        chunks = []
        while True:  # until the command closes the terminal (EIO on Linux)
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=600) == 0, stderr
    os.close(main)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "━" in screen and "tok/s" in screen  # the bar and the rate
    assert re.search(r"best_of_n n=2 +━+ +4/4 ", screen), screen[-2000:]
    assert ": shard " not in screen  # the plain per-shard lines are for pipes
    assert "results at each cell's N" in screen and "tracking: complete" in screen
    _log_file(stderr, home, "run")


@pytest.mark.vllm
def test_run_on_the_bundled_model_prints_under_40_lines_and_logs_vllm(tmp_path, mlflow_uri):
    home = tmp_path / "home"
    env = env_for(home, sqlite_store(tmp_path), mlflow_uri, TTSCALE_MODEL_CACHE=_model_cache(), TTSCALE_KV_CACHE_GIB="2")
    args = ["run", "--model", "smollm2-135m", "--dataset", "arith", "--limit", "3", "--n", "2", "--max-tokens", "96", "--verifier", "arithmetic"]
    got = ttscale(*args, env=env, timeout=900)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-5000:]
    lines = got.stdout.splitlines() + got.stderr.splitlines()
    assert len(lines) < 40, "\n".join(lines)
    assert not [line for line in lines if any(mark in line for mark in THIRD_PARTY_MARKS)], "\n".join(lines)
    assert any(line.startswith("best_of_n n=2 (") and "problems 3/3" in line for line in got.stdout.splitlines())
    log = _log_file(got.stderr, home, "run").read_text(encoding="utf-8")
    assert "(EngineCore" in log and "Initializing a V1 LLM engine" in log  # vLLM's engine process, from its descriptors
    assert "INFO ttscale.backends.vllm_engine: vllm engine ready" in log
