"""Prefect and MLflow for the tests, isolated from the machine's own state.

- At configure time, PREFECT_HOME (and the other paths Prefect 3.7 writes to) point into a
  session directory, so neither this process nor any `ttscale` subprocess touches
  ~/.prefect; subprocesses inherit it, which also lets their temporary servers reuse one
  migrated database. A test that checks the CLI's own default strips these (`no_prefect_env`).
- `prefect_harness`: Prefect's test harness (a temporary server, in-process flows run
  against it), once per session; yields its API URL so subprocesses can use it too.
- `prefect_server`: `prefect server start` on 127.0.0.1 and a free port (SQLite), once per
  session, for team mode; stopped at teardown.
- `background`: starts processes in their own session and kills them all at teardown
  (SIGTERM, then SIGINT — a Prefect worker may ignore one SIGTERM — then SIGKILL).
- `mlflow_uri`: a fresh SQLite tracking store per test; `mlflow_down_uri`: an HTTP URI on a
  closed port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PREFECT_PATH_VARS = ("PREFECT_HOME", "PREFECT_LOCAL_STORAGE_PATH", "PREFECT_MEMO_STORE_PATH", "PREFECT_LOGGING_SETTINGS_PATH")


def prefect_home_env(home: Path) -> dict[str, str]:
    """The variables the CLI sets for Prefect (`ttscale.cli.context.prefect_env`), under `home`."""
    from ttscale.cli.context import prefect_env

    home.mkdir(parents=True, exist_ok=True)
    return prefect_env(home)


def pytest_configure(config: pytest.Config) -> None:
    base = Path(tempfile.mkdtemp(prefix="ttscale-test-prefect-"))
    config._ttscale_prefect_base = base  # type: ignore[attr-defined]
    os.environ.update(prefect_home_env(base / "home"))
    os.environ.pop("PREFECT_API_URL", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    base = getattr(config, "_ttscale_prefect_base", None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def no_prefect_env(env: dict[str, str]) -> dict[str, str]:
    """`env` without the session's Prefect paths (so the CLI picks its own defaults)."""
    return {k: v for k, v in env.items() if k not in PREFECT_PATH_VARS and k != "PREFECT_LOGGING_EXTRA_LOGGERS"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGINT, then SIGKILL to the process's whole group (it was started in a
    session of its own), waiting `grace_s` after each."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
    # Children that outlive the leader (a flow run of a stopped worker) share its group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Background:
    """Processes a test starts; all stopped at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((proc, log))
        return proc

    def log(self, proc: subprocess.Popen) -> str:
        for p, path in self.procs:
            if p is proc:
                return path.read_text(errors="replace")
        return ""

    def stop_all(self) -> None:
        for proc, _ in reversed(self.procs):
            stop_process(proc)


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Background]:
    logs = tmp_path / "logs"
    logs.mkdir()
    bg = Background(logs)
    try:
        yield bg
    finally:
        bg.stop_all()


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """Prefect's test harness for the session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `prefect server start` on 127.0.0.1 (its own home and SQLite database); yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {**os.environ, **prefect_home_env(home / "home")}
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", 240, proc)
        yield f"http://127.0.0.1:{port}/api"
    except Exception:
        sys.stderr.write(log.read_text(errors="replace")[-3000:])
        raise
    finally:
        stop_process(proc)


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow tracking store (absolute path: four slashes)."""
    folder = tmp_path / "mlflow"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').absolute()}"


@pytest.fixture
def mlflow_down_uri() -> str:
    """An MLflow tracking URI nobody answers on."""
    return f"http://127.0.0.1:{free_port()}"
