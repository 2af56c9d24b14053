"""Helpers of the fault tests: instrumented subprocess environments, knowing when a shard is
in flight, servers the tests stop and start (a PostgreSQL cluster, a Prefect server, an MLflow
server), and the exactly-once checks every fault test ends with.

The code under test is never changed: `hook/sitecustomize.py` only slows the scripted model
and records each shard's start and end (see its docstring) in the processes a test starts.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tests.plugins.prefect_mlflow import free_port, prefect_home_env, stop_process, wait_http

HOOK_DIR = Path(__file__).resolve().parent / "hook"

# tests.orchestration.SMALL_SPEC: 3 generating cells x 5 problems, shards of 3 (6 shards);
# best_of_n at n=4 stores 4 candidates per problem and serves the n=2 cell.
N_PROBLEM_RUNS = 15


def one_cell_run_args(n_problems: int = N_PROBLEM_RUNS) -> list[str]:
    """`ttscale run` of one scripted cell with as many problems as the small spec's sweep stores,
    in shards of 3: a one-cell sweep that faults can strike mid-shard."""
    return ["run", "--model", "scripted", "--dataset", "arith", "--limit", str(n_problems), "--strategy", "best_of_n",
            "--n", "2", "--verifier", "scripted", "--shard-size", "3"]  # fmt: skip


def fault_env(env: dict[str, str], *, trace: Path | None = None, delay_s: float = 0.0, **extra: str) -> dict[str, str]:
    """`env` with the instrumentation hook first on PYTHONPATH (inherited by every child:
    the temporary Prefect server, workers and their flow-run processes)."""
    out = {**env, "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), *filter(None, [env.get("PYTHONPATH")])]), **extra}
    if trace is not None:
        out["RELIABILITY_TRACE"] = str(trace)
    if delay_s:
        out["RELIABILITY_GENERATE_DELAY_S"] = str(delay_s)
    return out


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.5, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll `predicate` until it returns something truthy; fail naming `what` (and the tail of
    `log`) on timeout or when `proc` exits first. A poll the store could not answer (a
    transient error: a loaded machine, a server the test restarts) counts as "not yet"."""
    from ttscale.store import is_transient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except Exception as err:  # a store too busy to answer this poll: poll again
            if not is_transient(err):
                raise
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}\n{_tail(log)}")
        time.sleep(poll_s)


def _tail(log: Path | None, n: int = 4000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-n:]


# ---- the trace of shards ---------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    pid: int
    started: float
    cell_id: str
    problem_ids: tuple[str, ...]

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {(self.cell_id, p) for p in self.problem_ids}


def read_trace(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def in_flight(path: Path) -> list[Shard]:
    """Shards started and not (yet) ended, per process."""
    open_: dict[tuple, Shard] = {}
    for e in read_trace(path):
        key = (e["pid"], e["cell_id"], tuple(e["problem_ids"]))
        if e["event"] == "start":
            open_[key] = Shard(e["pid"], e["t"], e["cell_id"], tuple(e["problem_ids"]))
        else:
            open_.pop(key, None)
    return list(open_.values())


def computed_since(path: Path, t: float) -> list[tuple[str, str]]:
    """(cell, problem) of every shard started after `t`, once per start."""
    return [(e["cell_id"], p) for e in read_trace(path) if e["event"] == "start" and e["t"] > t for p in e["problem_ids"]]


# ---- the store ---------------------------------------------------------------------------------


def stored_keys(url: str) -> set[tuple[str, str]]:
    """(cell_id, problem_id) of every problem_runs row: what the store says is done."""
    from ttscale import store

    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            runs = store.read_problem_runs(conn, store.read_cells(conn)["cell_id"].to_list())
        return set(runs.select("cell_id", "problem_id").iter_rows())
    finally:
        engine.dispose()


def claims(url: str) -> dict[tuple[str, str], int]:
    """(cell_id, problem_id) → pid of the process that claimed it, for every claim in the store."""
    import sqlalchemy as sa

    from ttscale import store
    from ttscale.store import schema

    c = schema.problem_claims.c
    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            return {(cell, problem): pid for cell, problem, pid in conn.execute(sa.select(c.cell_id, c.problem_id, c.pid))}
    finally:
        engine.dispose()


def wait_mid_shard(url: str, trace: Path, proc: subprocess.Popen, *, min_stored: int = 1, timeout_s: float = 600, log: Path | None = None, exclude: set | None = None) -> Shard:
    """Wait until the store holds at least `min_stored` problems (not all) and a shard is
    computing whose problems are not stored: the moment to strike. Returns that shard."""

    def ready():
        shards = [s for s in in_flight(trace) if not (exclude and s.keys & exclude)]
        if not shards:
            return None
        stored = stored_keys(url)
        if not (min_stored <= len(stored) < N_PROBLEM_RUNS):
            return None
        fresh = [s for s in shards if not s.keys & stored]
        return fresh[0] if fresh else None

    return wait_for(ready, timeout_s, f"a shard in flight with >= {min_stored} problems stored", poll_s=0.2, proc=proc, log=log)


def sqlite_integrity(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def assert_stored_exactly_once(url: str, sweep_id: str) -> dict[str, pl.DataFrame]:
    """The sweep is done and holds every problem of every generating cell once, with every
    candidate, node and verdict once by natural key, and cell totals that count each problem
    once (a retried or repeated shard write would show as a double count there)."""
    from ttscale import store

    from tests.orchestration import read_all

    data = read_all(url, sweep_id)
    sweep = data["sweeps"].filter(pl.col("sweep_id") == sweep_id).row(0, named=True)
    assert sweep["status"] == "done", sweep
    assert set(data["cells"]["status"]) == {"done"}, data["cells"].select("cell_id", "status").rows()
    runs, cands, verdicts = data["runs"], data["candidates"], data["verdicts"]
    assert runs.height == N_PROBLEM_RUNS
    assert runs.select("cell_id", "problem_id").n_unique() == N_PROBLEM_RUNS
    assert cands.select("cell_id", "problem_id", "idx").n_unique() == cands.height
    assert verdicts.select("cell_id", "problem_id", "method", "n").n_unique() == verdicts.height
    per_problem = cands.group_by("cell_id", "problem_id").len()
    expected = runs.select("cell_id", "problem_id", pl.col("n_candidates").cast(pl.UInt32).alias("len"))
    assert per_problem.sort("cell_id", "problem_id").equals(expected.sort("cell_id", "problem_id"))
    cells = {r["cell_id"]: r for r in data["cells"].iter_rows(named=True)}
    for cell_id, cell in cells.items():
        mine = runs.filter(pl.col("cell_id") == cell_id)
        if cell["source_cell_id"] is None:
            assert mine.height == cell["n_problems"], (cell_id, mine.height, cell["n_problems"])
            assert cell["n_generated_tokens"] == mine["n_generated_tokens"].sum(), cell_id
            assert cell["n_prompt_tokens"] == mine["n_prompt_tokens"].sum(), cell_id
            if cell["strategy"] == "best_of_n":
                assert (per_problem.filter(pl.col("cell_id") == cell_id)["len"] == cell["n"]).all()
        else:
            assert mine.height == 0
    from ttscale.store.read import read_nodes_of_cells

    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            nodes = read_nodes_of_cells(conn, list(cells))
    finally:
        engine.dispose()
    assert nodes.select("cell_id", "problem_id", "node_id").n_unique() == nodes.height
    per_problem_nodes = nodes.group_by("cell_id", "problem_id").len().rename({"len": "n_nodes"})
    want_nodes = runs.filter(pl.col("n_nodes") > 0).select("cell_id", "problem_id", pl.col("n_nodes").cast(pl.UInt32))
    assert per_problem_nodes.sort("cell_id", "problem_id").equals(want_nodes.sort("cell_id", "problem_id"))
    return data


def sweep_id_of(url: str, name: str) -> str:
    from tests.orchestration import read_all

    sweeps = read_all(url, "")["sweeps"]
    return sweeps.filter(pl.col("name") == name)["sweep_id"][0]


# ---- servers the tests stop and start ------------------------------------------------------------


class PgCluster:
    """A PostgreSQL cluster of one test's own (the session's server is shared: never restart
    it). As root, initdb and pg_ctl run as `postgres` through the wrapper of tests/plugins/postgres.py."""

    def __init__(self) -> None:
        from tests.plugins.postgres import _server_dir

        self.base, self.pg_ctl = _server_dir()
        self.data = self.base / "data"
        self.log = self.base / "postgresql.log"
        self.port = free_port()
        self.options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._ctl("initdb", "-D", str(self.data), "-o", "-U postgres --auth=trust -E UTF8")

    def _ctl(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        got = subprocess.run([self.pg_ctl, *args], capture_output=True, text=True, timeout=timeout)
        if check and got.returncode != 0:
            raise RuntimeError(f"pg_ctl {shlex.join(args)} failed ({got.returncode}): {got.stdout[-2000:]}{got.stderr[-2000:]}\n{_tail(self.log)}")
        return got

    def start(self) -> None:
        self._ctl("start", "-w", "-t", "120", "-D", str(self.data), "-l", str(self.log), "-o", self.options)

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-w", "-t", "120", "-m", mode, "-D", str(self.data))

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-w", "-t", "120", "-m", mode, "-D", str(self.data), "-l", str(self.log), "-o", self.options)

    def is_running(self) -> bool:
        return self._ctl("status", "-D", str(self.data), check=False).returncode == 0

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        import shutil

        if self.data.exists():
            self._ctl("stop", "-w", "-m", "immediate", "-D", str(self.data), check=False)
        shutil.rmtree(self.base, ignore_errors=True)


class ServerProcess:
    """A server the test starts, stops and starts again on the same port and state."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], health_url: str, logs: Path) -> None:
        self.name, self.args, self.env, self.health_url, self.logs = name, args, env, health_url, logs
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}-{self.starts}.log"

    def start(self, timeout_s: float = 300) -> None:
        self.stop()  # never two on one port
        self.starts += 1
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(self.health_url, timeout_s, self.proc)
        except Exception:
            sys.stderr.write(_tail(self.log))
            raise

    def stop(self, sig: signal.Signals | None = None) -> None:
        """Stop the server: gracefully (SIGTERM, then harder), or with `sig` to its whole group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if sig is not None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=60)
        stop_process(self.proc)


def team_server_settings(database_url: str) -> dict[str, str]:
    """What docs/reliability.md asks of a team Prefect server: its database on PostgreSQL, and
    concurrency-slot leases on disk. With Prefect's defaults — SQLite, leases in memory — a
    restart can leave a GPU slot occupied with no lease that would ever free it, and that
    slot's worker then waits forever."""
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
    }


def prefect_server(tmp_path: Path, **settings: str) -> ServerProcess:
    home = tmp_path / "prefect-server"
    port = free_port()
    env = {**os.environ, **prefect_home_env(home / "home"), **settings}
    env.pop("PREFECT_API_URL", None)
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    logs = tmp_path / "server-logs"
    logs.mkdir(exist_ok=True)
    server = ServerProcess("prefect", args, env, f"http://127.0.0.1:{port}/api/health", logs)
    server.api_url = f"http://127.0.0.1:{port}/api"  # type: ignore[attr-defined]
    return server


def mlflow_server(tmp_path: Path) -> ServerProcess:
    folder = tmp_path / "mlflow-server"
    folder.mkdir(exist_ok=True)
    port = free_port()
    args = [
        str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    logs = tmp_path / "server-logs"
    logs.mkdir(exist_ok=True)
    server = ServerProcess("mlflow", args, env, f"http://127.0.0.1:{port}/health", logs)
    server.uri = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return server
