"""Two runs of the same work at once on one store: each problem is computed once.

Two `ttscale sweep run` of one spec (or two `ttscale run` of one cell) are started together
on the scripted model. Each claims a shard's problems in the store before computing them and
defers what the other has claimed; once through its shards it waits for the other to store
what it deferred. The model is held at a gate until both processes are computing a shard, so
the runs overlap whatever their start-up times. Both exit 0, the store holds every problem
once, and the trace of `search_shard` calls — which problems each process computed — holds
every problem exactly once, split between the two processes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.cli import TTSCALE
from tests.orchestration import env_for, migrated_store, read_all, small_spec, sqlite_store
from tests.plugins.prefect_mlflow import no_prefect_env
from tests.reliability.faults import (
    N_PROBLEM_RUNS,
    assert_stored_exactly_once,
    fault_env,
    in_flight,
    one_cell_run_args,
    read_trace,
    stored_keys,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("command", "engine"),
    [("sweep run", "sqlite"), pytest.param("sweep run", "postgresql", marks=pytest.mark.postgres), ("run", "sqlite")],
    ids=["sweep-sqlite", "sweep-postgresql", "run-sqlite"],
)
def test_two_runs_at_once_compute_each_problem_once(command, engine, request, tmp_path: Path, mlflow_down_uri, background):
    url = sqlite_store(tmp_path) if engine == "sqlite" else migrated_store(request.getfixturevalue("fresh_postgres_db"))
    args = ["sweep", "run", str(small_spec(tmp_path, f"twice-{engine}"))] if command == "sweep run" else one_cell_run_args()
    trace, gate = tmp_path / "trace.jsonl", tmp_path / "gate"
    procs = []
    for name in ("first", "second"):  # each with its own home: its own temporary Prefect server
        env = fault_env(no_prefect_env(env_for(tmp_path / name, url, mlflow_down_uri)), trace=trace, delay_s=0.5, RELIABILITY_GATE=str(gate))
        procs.append(background.start([TTSCALE, *args], env, name))

    def both_computing() -> bool:
        for proc in procs:
            assert proc.poll() is None, background.log(proc)[-5000:]
        return len({shard.pid for shard in in_flight(trace)}) == 2

    wait_for(both_computing, 600, "a shard in flight in each run")
    gate.touch()
    for proc in procs:
        proc.wait(timeout=900)
        assert proc.returncode == 0, background.log(proc)[-5000:]

    sweeps = read_all(url, "")["sweeps"]
    assert sweeps.height == 1  # one sweep, registered by both
    assert_stored_exactly_once(url, sweeps["sweep_id"][0])
    computed = Counter((e["pid"], e["cell_id"], p) for e in read_trace(trace) if e["event"] == "start" for p in e["problem_ids"])
    per_problem = Counter((cell, p) for (_, cell, p) in computed.elements())
    assert set(per_problem) == stored_keys(url) and len(per_problem) == N_PROBLEM_RUNS
    assert max(per_problem.values()) == 1, [k for k, n in per_problem.items() if n > 1]  # none computed twice
    per_process = Counter(pid for (pid, _, _) in computed.elements())
    assert set(per_process) == {p.pid for p in procs}
    # one met the other's claims: said in its INFO lines, which go to the command's log file
    logs = [Path(line.removeprefix("log: ")) for p in procs for line in background.log(p).splitlines() if line.startswith("log: ")]
    assert len(logs) == 2 and "shard deferred" in "".join(f.read_text(encoding="utf-8") for f in logs)
