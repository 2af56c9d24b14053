"""The loop's benchmark runs the documented sequence: its specs at default sizes are the example
specs of docs/learning.md, and its `learn dataset` split is the documented one."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmarks import verifier_loop
from ttscale.spec import parse_sweep

ROOT = Path(__file__).resolve().parents[2]


def _spec(text: str, **changes):
    data = {**yaml.safe_load(text), **changes}
    data.pop("retries", None)  # the benchmark fails fast; a user's run may retry
    return parse_sweep(data)


def test_the_loop_benchmark_runs_the_example_specs_and_the_documented_split():
    defaults = verifier_loop.parser().parse_args([])
    train = verifier_loop.SPEC.format(name="loop-train", verifiers="[self, arith_chain]", n=defaults.n, limit=defaults.train_problems, seed=0)
    assert _spec(train) == _spec((ROOT / "examples/loop_train.yaml").read_text())
    example_eval = (ROOT / "examples/loop_eval.yaml").read_text()
    learned = [v for v in yaml.safe_load(example_eval)["verifiers"] if v.startswith("learned:")]
    evaluation = verifier_loop.SPEC.format(name="loop-eval", verifiers=f"[self, arith_chain, '{learned[0]}']", n=defaults.n,
                                           limit=defaults.eval_problems, seed=1)  # fmt: skip
    assert _spec(evaluation) == _spec(example_eval)
    doc = (ROOT / "docs/learning.md").read_text()
    assert f"ttscale learn dataset loop-train --out .ttscale/learn/steps --split {defaults.split}" in doc
    assert "ttscale sweep run examples/loop_train.yaml" in doc and "ttscale sweep run examples/loop_eval.yaml" in doc
