"""Start `ttscale serve` through its real entry point in a subprocess, as a user would, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.cli import TTSCALE
from tests.plugins.prefect_mlflow import free_port


@dataclass
class Served:
    url: str
    """The `/v1` base URL."""
    proc: subprocess.Popen
    log: Path
    """The subprocess's stdout and stderr (the terminal lines; the rest is in its log file)."""

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(args: list[str], env: dict[str, str], log: Path, *, ready_s: float = 600) -> Iterator[Served]:
    """`ttscale serve ARGS --port P` running until the block ends (then SIGTERM); ready once
    `GET /v1/models` answers (polled; the engine may take minutes to start on a busy CPU)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([TTSCALE, "serve", *args, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    served = Served(f"http://127.0.0.1:{port}/v1", proc, log)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            assert proc.poll() is None, f"ttscale serve exited with {proc.returncode}: {served.output()[-3000:]}"
            try:
                if httpx.get(f"{served.url}/models", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"ttscale serve not ready after {ready_s} s: {served.output()[-3000:]}"
            time.sleep(0.5)
        yield served
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout_s: float = 60) -> int:
    """SIGTERM, then SIGKILL if it does not stop within `timeout_s`; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
