"""Waiting for a `ttscale dashboard` the test started: shared by the browser, security and
load tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def wait_until_healthy(base: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Poll Streamlit's health endpoint under `base` until it answers ok; fail with the tail of
    the server's log if the process exits or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"dashboard at {base} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


@contextlib.contextmanager
def served_dashboard(env: dict[str, str], log: Path, *, db: str | None = None, timeout_s: float = 180) -> Iterator[str]:
    """A real `ttscale dashboard` on a free port (its output in `log`), yielding its base URL once
    healthy; its whole process group is stopped on exit. The start limit is generous: a loaded
    machine starts Streamlit slowly, and the wait ends as soon as the server answers."""
    from tests.cli import TTSCALE
    from tests.plugins.prefect_mlflow import free_port

    port = free_port()
    command = [TTSCALE, "dashboard", "--port", str(port), *(["--db", db] if db else [])]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, log, timeout_s=timeout_s)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
