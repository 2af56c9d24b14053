"""Run the real `ttscale` entry point in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TTSCALE = str(Path(sys.executable).with_name("ttscale"))


def ttscale(*args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: str | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([TTSCALE, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd)
