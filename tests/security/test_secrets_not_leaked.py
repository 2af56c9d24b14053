"""Passwords in the store and tracking URLs never appear in what ttscale writes or prints.

Real commands, as a user runs them, with a password in TTSCALE_DATABASE_URL and in
MLFLOW_TRACKING_URI (both PostgreSQL, on a role that really needs its password:
tests/security/conftest.py): `ttscale db upgrade|current|check`, `ttscale sweep validate`,
`ttscale -v sweep run` of a small sweep on the scripted policy (Prefect's temporary server,
MLflow tracking), `sweep status`, `sweep sync-mlflow`, `ttscale run`, `ttscale export` in
every format, the same commands with a wrong password (store and tracking), and the start
line of `ttscale dashboard`. Then the password is looked for everywhere: stdout and stderr of
every command, every file under TTSCALE_HOME (Prefect's database and logs, run files, MLflow
artifacts) and the export folders, MLflow's params, tags, run names and artifacts read back
with MlflowClient, and every text column of the MLflow and store databases.

While the sweep runs, the listening sockets of its process tree are sampled: Prefect's
temporary server must listen on loopback only (test_loopback_binds.py has the dashboard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from tests.cli import TTSCALE
from tests.dashboard_server import wait_until_healthy
from tests.plugins.prefect_mlflow import free_port, no_prefect_env, stop_process
from tests.security.conftest import PASSWORD, WRONG_PASSWORD

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SECRETS = (PASSWORD, WRONG_PASSWORD)
ROWS = [{"id": f"q{i}", "problem": f"Ada has {i} apples and finds 2 more. How many apples?", "answer": str(i + 2)} for i in range(4)]
SPEC = """\
name: secrets-check
models: [scripted]
verifiers: [scripted]
strategies: [{{name: best_of_n}}]
budgets: [2]
datasets: [{{name: jsonl, path: '{path}'}}]
shard_size: 2
"""


class Commands:
    """Runs `ttscale` with an environment and keeps every output it printed."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env, self.outputs = home, env, []

    def run(self, *args: str, expect: int = 0, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        done = subprocess.run([TTSCALE, *args], env={**self.env, **(env or {})}, cwd=str(self.home),
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        self.outputs.append((args, done.stdout, done.stderr))
        assert done.returncode == expect, f"ttscale {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done


class ListenWatcher(threading.Thread):
    """Samples the listening TCP sockets of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.seen, self.stop = pid, set(), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                root = psutil.Process(self.pid)
                for proc in [root, *root.children(recursive=True)]:
                    for conn in proc.net_connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            self.seen.add((proc.pid, " ".join(proc.cmdline()[:6]), conn.laddr.ip, conn.laddr.port))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
            time.sleep(0.1)


def sweep_run_watched(cmds: Commands, spec: Path) -> tuple[subprocess.CompletedProcess, set]:
    log_out, log_err = cmds.home / "sweep-run.stdout", cmds.home / "sweep-run.stderr"
    with log_out.open("w") as out, log_err.open("w") as err:
        proc = subprocess.Popen([TTSCALE, "-v", "sweep", "run", str(spec)], env=cmds.env, cwd=str(cmds.home), stdout=out, stderr=err)
        watcher = ListenWatcher(proc.pid)
        watcher.start()
        try:
            rc = proc.wait(timeout=900)
        finally:
            watcher.stop.set()
            watcher.join(5)
            if proc.poll() is None:
                proc.kill()
    done = subprocess.CompletedProcess(proc.args, rc, log_out.read_text(), log_err.read_text())
    cmds.outputs.append((("sweep", "run"), done.stdout, done.stderr))
    assert rc == 0, f"sweep run exited {rc}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done, watcher.seen


def dashboard_start_line(cmds: Commands) -> tuple[str, set]:
    port = free_port()
    log = cmds.home / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([TTSCALE, "dashboard", "--port", str(port)], env=cmds.env, cwd=str(cmds.home),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc, log, timeout_s=180)
        listening = {
            (c.laddr.ip, c.laddr.port)
            for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
    finally:
        stop_process(proc)
    text = log.read_text()
    cmds.outputs.append((("dashboard",), text, ""))
    return text, listening


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def database_text(url: str) -> str:
    """Every value of every table of a database, as text (for a substring search)."""
    engine = sa.create_engine(url)
    parts = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    parts.append(repr(tuple(row)))
    finally:
        engine.dispose()
    return "\n".join(parts)


def mlflow_text(uri: str, download_to: Path) -> str:
    """Params, tags, run names, metric keys and artifact contents of every MLflow run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parts = []
    for exp in client.search_experiments():
        parts.append(repr(exp))
        for run in client.search_runs([exp.experiment_id], max_results=1000):
            parts += [repr(run.info), json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(sorted(run.data.metrics))]
            target = download_to / run.info.run_id
            target.mkdir(parents=True)
            client.download_artifacts(run.info.run_id, "", str(target))
    for path in files_under(download_to):
        parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def assert_no_secret(where: str, text: str | bytes) -> None:
    for secret in SECRETS:
        needle = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"{secret!r} found in {where}"


def test_passwords_never_appear_in_outputs_logs_mlflow_or_exports(password_role, tmp_path):
    role = password_role
    store_url = role.url(f"{role.name}_store")
    mlflow_uri = role.url(f"{role.name}_mlflow")
    home = tmp_path / "home"
    home.mkdir()
    env = no_prefect_env({**os.environ})  # Prefect's state under TTSCALE_HOME/prefect: searched below
    env.update({
        "TTSCALE_HOME": str(home), "TTSCALE_DATABASE_URL": store_url, "MLFLOW_TRACKING_URI": mlflow_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })  # fmt: skip
    env.pop("TTSCALE_DASHBOARD_DATABASE_URL", None)
    cmds = Commands(home, env)
    rows = home / "problems.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    spec = home / "spec.yaml"
    spec.write_text(SPEC.format(path=rows), encoding="utf-8")

    # The happy path, with the password in both URLs.
    assert "***@" in cmds.run("db", "upgrade").stdout
    cmds.run("db", "current")
    cmds.run("db", "check")
    cmds.run("sweep", "validate", str(spec))
    run, listening = sweep_run_watched(cmds, spec)
    assert "tracking: complete" in run.stdout, run.stdout[-3000:]
    cmds.run("sweep", "status", "secrets-check")
    cmds.run("-v", "sweep", "sync-mlflow", "secrets-check")
    cmds.run("sweep", "sync-mlflow", "secrets-check", "--db", store_url)
    cmds.run("run", "--model", "scripted", "--dataset", str(rows), "--strategy", "majority", "--n", "2", "--limit", "2")
    exports = tmp_path / "exports"
    for fmt in ("parquet", "jsonl", "csv"):
        cmds.run("export", "secrets-check", "--format", fmt, "--out", str(exports / fmt))

    # Wrong passwords: one-line errors that name the URL redacted.
    wrong_store = role.url(f"{role.name}_store", password=WRONG_PASSWORD)
    wrong_mlflow = role.url(f"{role.name}_mlflow", password=WRONG_PASSWORD)
    for args in (("db", "check"), ("db", "upgrade"), ("sweep", "run", str(spec)), ("export", "secrets-check", "--out", str(tmp_path / "x"))):
        failed = cmds.run(*args, expect=1, env={"TTSCALE_DATABASE_URL": wrong_store})
        last = failed.stderr.strip().splitlines()[-1]  # (retry warnings may come first)
        assert last.startswith("error: ") and "Traceback" not in failed.stderr, failed.stderr
        assert f"{role.name}:***@" in last and "password authentication failed" in last, failed.stderr
    failed = cmds.run("db", "check", "--db", wrong_store, expect=1)
    assert f"{role.name}:***@" in failed.stderr
    failed = cmds.run("-v", "sweep", "sync-mlflow", "secrets-check", expect=1, env={"MLFLOW_TRACKING_URI": wrong_mlflow})
    assert "tracking of sweep" in failed.stderr and "incomplete" in failed.stderr, failed.stderr

    start, dashboard_sockets = dashboard_start_line(cmds)
    assert f"reading postgresql+psycopg://{role.name}:***@" in start, start

    # Where servers listened: loopback only.
    assert listening, "no listening socket seen while the sweep ran (Prefect's temporary server)"
    assert {ip for *_, ip, _ in listening} <= {"127.0.0.1", "::1"}, listening
    assert dashboard_sockets and {ip for ip, _ in dashboard_sockets} == {"127.0.0.1"}, dashboard_sockets

    # Now look for the passwords everywhere.
    for args, out, err in cmds.outputs:
        assert_no_secret(f"stdout of ttscale {' '.join(args)}", out)
        assert_no_secret(f"stderr of ttscale {' '.join(args)}", err)
    written = files_under(home, exports)
    assert any(p.name == "prefect.db" for p in written), "Prefect's database is not under TTSCALE_HOME"
    assert any(p.suffix == ".parquet" for p in files_under(exports)) and any(p.suffix == ".jsonl" for p in files_under(home / "runs"))
    for path in written:
        assert_no_secret(str(path), path.read_bytes())
    assert_no_secret("MLflow runs (MlflowClient)", mlflow_text(mlflow_uri, tmp_path / "artifacts"))
    assert_no_secret("MLflow database", database_text(mlflow_uri))
    assert_no_secret("the store", database_text(store_url))
    # Sanity: the search does find a secret that is there.
    assert PASSWORD in mlflow_uri and "secrets-check" in database_text(mlflow_uri)
