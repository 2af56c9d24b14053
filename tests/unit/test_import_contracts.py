"""The architecture contracts of .importlinter hold: layers, and each heavy dependency behind
the one module that owns it (SQL in store, MLflow in tracking, vLLM in backends, no Prefect or
Streamlit in the package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    got = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stdout[-4000:] + got.stderr[-2000:]
    assert "0 broken" in got.stdout
