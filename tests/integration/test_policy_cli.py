"""`ttscale report SWEEP --policy FILE` through the real entry point: a small scripted sweep is run,
the compute-optimal policy it supports is written (a file that loads and validates), and a second
sweep on another seed runs the `adaptive` strategy with that file beside a fixed strategy: every
problem's tree holds its probes, and the report compares the two at the same n and FLOPs."""

from __future__ import annotations

import json
import subprocess

import polars as pl

from tests.cli import TTSCALE, ttscale
from tests.orchestration import env_for, read_all, sqlite_store
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


ADAPTIVE_SPEC = """\
name: apply
models: [scripted]
verifiers: [arithmetic]
strategies:
  - name: adaptive
    policy: {policy}
    probes: 2
  - name: best_of_n
budgets: [2, 4]
datasets:
  - name: arith
    limit: 12
seeds: [1]
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

    # The policy on another seed: adaptive beside best_of_n, through `ttscale sweep run`.
    run_sweep(ADAPTIVE_SPEC.format(policy=out), "apply", tmp_path, env)
    sweep = read_all(env["TTSCALE_DATABASE_URL"], "")["sweeps"].filter(pl.col("name") == "apply").row(0, named=True)
    data = read_all(env["TTSCALE_DATABASE_URL"], sweep["sweep_id"])
    adaptive = data["cells"].filter(pl.col("strategy") == "adaptive")
    assert adaptive.height == 2 and set(adaptive["status"]) == {"done"}
    for cell in adaptive.iter_rows(named=True):
        runs = data["runs"].filter(pl.col("cell_id") == cell["cell_id"])
        assert runs.height == 12 and (runs["n_candidates"] > 0).all()
        assert cell["n_generated_tokens"] == runs["n_generated_tokens"].sum() > 0  # probes included, node by node
    exported = ttscale("export", "apply", "--format", "csv", "--out", str(tmp_path / "export"), env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    nodes = pl.read_csv(tmp_path / "export" / "nodes.csv")
    adaptive_nodes = nodes.filter(pl.col("cell_id").is_in(adaptive["cell_id"].implode()))
    # Each problem's 2 probes are its first nodes, whole completions at depth 0.
    probes = adaptive_nodes.filter(pl.col("node_id") < 2)
    assert probes.height == 2 * 2 * 12 and set(probes["kind"]) == {"completion"} and set(probes["depth"]) == {0}
    report = ttscale("report", "apply", "--format", "json", "--table", "frontier", "--table", "accuracy", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    tables = json.loads(report.stdout)["tables"]
    assert {r["config"] for r in tables["accuracy"]} == {"adaptive", "best_of_n"}
    assert {r["budget"] for r in tables["frontier"]} >= {2, 4}
