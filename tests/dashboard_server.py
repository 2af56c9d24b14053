"""Waiting for a `ttscale dashboard` the test started: shared by the browser, security and
load tests."""

from __future__ import annotations

import subprocess
import time
import urllib.request
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
