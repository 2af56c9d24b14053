"""`ttscale report SWEEP --policy FILE` through the real entry point: a small scripted sweep is run
and the compute-optimal policy it supports is written, a file that loads and validates."""

from __future__ import annotations

import subprocess

from tests.cli import TTSCALE, ttscale
from tests.orchestration import env_for, sqlite_store
from tests.plugins.prefect_mlflow import no_prefect_env
from ttscale.policy import load_policy

# 3 strategies x 2 budgets x 12 arith problems on the scripted policy: best_of_n (scored) is the
# difficulty reference, beam search competes at both budgets, majority at every n.
LEARN_SPEC = """\
name: learn
models: [scripted]
verifiers: [arithmetic]
strategies:
  - name: best_of_n
  - name: majority
  - name: beam_search
    beam_width: 2
    n_iterations: 3
budgets: [2, 4]
datasets:
  - name: arith
    limit: 12
seeds: [0]
shard_size: 12
"""


def run_sweep(spec_text: str, name: str, tmp_path, env: dict[str, str]) -> None:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    # Not tests.cli.ttscale: it would merge this process's (isolated) Prefect paths back in.
    got = subprocess.run([TTSCALE, "sweep", "run", str(spec)], env=no_prefect_env(env), capture_output=True, text=True, timeout=900)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]


def test_report_writes_the_policy_the_frontier_chose(tmp_path, mlflow_down_uri):
    env = env_for(tmp_path / "home", sqlite_store(tmp_path), mlflow_down_uri)
    run_sweep(LEARN_SPEC, "learn", tmp_path, env)
    out = tmp_path / "policy.json"
    got = ttscale("report", "learn", "--table", "bins", "--policy", str(out), env=env)
    assert got.returncode == 0, got.stderr[-3000:]
    policy = load_policy(out)
    assert f"policy: {out} (scripted on arith" in got.stderr
    assert (policy.model, policy.dataset, policy.sweep_name) == ("scripted", "arith", "learn")
    assert policy.sweep_id and policy.sweep_code_version and policy.code_version.startswith("0.")
    assert policy.predictor.verifier == "arithmetic" and policy.predictor.n_reference_samples == 4
    # n = 1 is the first candidate of the prefix-sharing cells, a run at n = 1 of its own.
    assert policy.budgets == (1, 2, 4)
    assert {c.strategy.name for c in policy.choices} <= {"best_of_n", "majority", "beam_search"}
    assert all(c.strategy.name != "beam_search" for c in policy.choices if c.n == 1)
    bins = [b.bin for b in policy.predictor.bins]
    assert len(policy.choices) == len(bins) * 3

    other = ttscale("report", "learn", "--table", "bins", "--policy", str(tmp_path / "other.json"), "--policy-model", "other", env=env)
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1] == "error: policy: no cells of other on any dataset; have scripted on arith"
    assert not (tmp_path / "other.json").exists()
