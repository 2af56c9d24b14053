"""Every benchmark runs from a clean checkout at its smallest size (STYLE: "a --smoke size lets
CI run each on CPU"). Figures are not checked here — speed lives in benchmarks/RESULTS.md —
but each command must finish, exit 0 and leave RESULTS.md untouched with --no-record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMOKE = {
    "store_write": ["--smoke"],
    "analysis_scale": ["--smoke", "--repeat", "1"],
    "concurrent_writers": ["--smoke"],
    "dashboard_load": ["--smoke", "--repeat", "1"],
    "search_throughput": ["--quick"],
    "gpu_search": ["--help"],  # needs a GPU to run; here only its command line is checked
    "adaptive_policy": ["--help"],  # two sweeps on the engine (~40 min at full size): the command line here
    "verifier_loop": ["--smoke", "--rollouts", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_at_smoke_size(name, tmp_path):
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_text(encoding="utf-8")
    args = SMOKE[name] + ([] if "--help" in SMOKE[name] else ["--no-record"])
    from ttscale.settings import Settings

    # A fresh home per benchmark, but the converted model is shared with the rest of the suite.
    cache = str(Settings.from_env().model_cache)
    env = {**os.environ, "TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_MODEL_CACHE": cache}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert results.read_text(encoding="utf-8") == before
