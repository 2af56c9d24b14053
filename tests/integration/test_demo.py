"""`make demo`'s script end to end on the bundled model (slow: ~5-10 minutes on 2 cores): the
sweep of examples/demo.yaml, then the report. What a new user sees: fewer than 40 lines before the
results, none of them from the libraries, then the headline and findings, accuracy rising with n,
three difficulty bins, the verifier's AUC, and the frontier chart written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_orchestration_vllm import _model_cache
from tests.integration.test_terminal_output import THIRD_PARTY_MARKS

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_demo_script_shows_the_findings_after_fewer_than_40_lines(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTSCALE_", "PREFECT_", "MLFLOW_"))}
    env.update({"TTSCALE_HOME": str(home), "TTSCALE_MODEL_CACHE": _model_cache(), "DEMO_NO_DASHBOARD": "1", "COLUMNS": "100"})
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout.splitlines()
    start = next(i for i, line in enumerate(out) if line.strip() == "findings")  # the report's first table
    before = out[:start] + done.stderr.splitlines()
    assert len(before) < 40, "\n".join(before)
    assert not [line for line in before if any(mark in line for mark in THIRD_PARTY_MARKS)], "\n".join(before)
    report = "\n".join(out[start:])
    for words in ("headline", "smollm2-135m on ladder: at n=1 use", "rises with the budget", "verifier_quality", "AUC"):
        assert words in report, report
    assert "n=8" in report and "accuracy" in report and "frontier" in report
    assert (home / "demo-frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
