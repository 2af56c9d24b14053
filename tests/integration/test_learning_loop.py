"""Search, then learn, for real: the learned verifier on the bundled backbone (transformers on
CPU) is causal and batched; and the whole loop through the real entry point — a sweep stored,
`ttscale learn dataset`, `ttscale learn train`, then `ttscale run --verifier learned:PATH` on
the bundled model in vLLM, its scores and FLOPs stored with the cell."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tests.cli import ttscale
from tests.integration.test_orchestration_vllm import _model_cache
from tests.orchestration import env_for, sqlite_store
from ttscale.reward_model import RewardHead, RewardModelConfig, write_model_dir
from ttscale.verifiers import load_verifier, split_steps
from ttscale.verifiers.cache import CachingVerifier

PROBLEM = "Maya has 3 shells. She finds 4 more. How many shells does Maya have now?"
STEPS = ["Maya starts with 3 shells.", "3 + 4 = 7", "So the answer is \\boxed{7}."]


def random_head_folder(tmp_path, layer: int = 2):
    rng = np.random.default_rng(0)
    head = RewardHead("logistic", {"mean": np.zeros(576), "scale": np.full(576, 10.0), "w": rng.normal(0, 0.1, 576), "b": np.array(0.0)})
    config = RewardModelConfig(backbone="smollm2-135m", layer=layer, step_format="question-answer-v1", head="logistic",
                               label="soft", n_features=576, backbone_n_params=0, head_n_params=head.n_params)  # fmt: skip
    fp = write_model_dir(tmp_path / "model", config, head, {"note": "random head"}, None)
    return tmp_path / "model", fp


def test_learned_verifier_is_causal_batched_and_counts_what_it_runs(tmp_path, vllm_settings):
    folder, fp = random_head_folder(tmp_path)
    verifier = load_verifier(f"learned:{folder}@{fp}", None, vllm_settings)
    # the embeddings (49,152 × 576) and 2 of SmolLM2-135M's 30 layers, plus the head's 577
    assert verifier.n_params == 49_152 * 576 + 2 * 3_540_096 + 577
    # Exact in float32; in bfloat16 (CPUs with AMX or AVX512-BF16) another batch shape moves a
    # score by ~1e-4 (measured), the features' rounding, not a dependence on later steps.
    tol = 1e-6 if verifier.encoder.dtype == "float32" else 2e-3
    full = verifier.score([PROBLEM], [STEPS], [0])[0]
    assert len(full.scores) == 3 and all(0.05 <= s <= 0.95 for s in full.scores) and len(set(full.scores)) == 3
    for i in range(3):  # step i's score is the same with or without the later steps
        assert verifier.score([PROBLEM], [STEPS[: i + 1]], [i])[0].scores == pytest.approx(full.scores[i : i + 1], abs=tol)
    other = ["3 + 4 = 8", "The answer is 8."]
    batched = verifier.score([PROBLEM, PROBLEM, "What is 2 + 2?"], [STEPS, other, []], [1, 0, 0])
    assert batched[0].scores == pytest.approx(full.scores[1:], abs=tol)
    assert batched[1].scores == pytest.approx(verifier.score([PROBLEM], [other], [0])[0].scores, abs=tol)
    assert batched[2].scores == () and batched[2].n_tokens == 0
    assert batched[0].n_tokens == full.n_tokens > 20  # the whole solution is read to score its later steps
    cached = CachingVerifier(verifier)
    assert cached.score([PROBLEM], [STEPS[:2]])[0].scores == pytest.approx(full.scores[:2], abs=tol)
    assert cached.score([PROBLEM], [STEPS])[0].scores == pytest.approx(full.scores, abs=tol)


SCRIPTED_SWEEP = """\
name: learn-source
models: [scripted]
verifiers: [arithmetic]
strategies:
  - name: best_of_n
  - name: beam_search
    beam_width: 2
    n_iterations: 3
budgets: [4]
datasets:
  - name: ladder
    levels: [1, 2]
    limit: 24
shard_size: 24
retries: 0
"""


@pytest.mark.vllm
def test_the_loop_sweep_dataset_train_then_score_with_the_learned_verifier(tmp_path, mlflow_uri):
    url = sqlite_store(tmp_path)
    env = env_for(tmp_path / "home", url, mlflow_uri, TTSCALE_MODEL_CACHE=_model_cache(), TTSCALE_KV_CACHE_GIB="2")
    spec = tmp_path / "source.yaml"
    spec.write_text(SCRIPTED_SWEEP, encoding="utf-8")
    got = ttscale("sweep", "run", str(spec), env=env, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]

    data = tmp_path / "steps"
    got = ttscale("learn", "dataset", "learn-source", "--out", str(data), "--split", "0.5,0.25,0.25", env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    card = json.loads((data / "card.json").read_text())
    rows = pl.read_parquet(data / "steps.parquet")
    assert len(card["cells"]) == 2 and card["n_rows"] == rows.height > 48
    assert card["n_nodes"] > card["n_nodes_labelled"] > 0  # pruned beam steps have no candidate below
    assert rows.group_by("problem_id").agg(pl.col("split").n_unique())["split"].max() == 1
    test_ids = {json.loads(line)["id"] for line in (data / "test_problems.jsonl").read_text().splitlines()}
    assert test_ids == set(rows.filter(pl.col("split") == "test")["problem_id"])

    model = tmp_path / "model"
    got = ttscale("learn", "train", str(data), "--out", str(model), "--layers", "2,3", "--epochs", "60",
                  "--l2", "0.01", env=env, timeout=600)  # fmt: skip
    assert got.returncode == 0, got.stderr[-3000:]
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["chosen"]["layer"] in (2, 3) and len(metrics["runs"]) == 4  # 2 layers × 2 heads × 1 l2
    assert metrics["validation"]["n_steps"] > 0 and 0.0 <= metrics["validation"]["brier"] <= 1.0
    assert metrics["dataset"]["card"] == card
    name = next(line.split("verifier: ", 1)[1] for line in got.stdout.splitlines() if line.startswith("verifier: "))
    assert name.startswith(f"learned:{model}@")
    again = ttscale("learn", "train", str(data), "--out", str(model), env=env, timeout=120)
    assert again.returncode == 2 and "already holds a model" in again.stderr

    got = ttscale("run", "--model", "smollm2-135m", "--dataset", "ladder", "--limit", "3", "--strategy", "best_of_n",
                  "--n", "2", "--verifier", f"learned:{model}", "--max-tokens", "64", env=env, timeout=900)  # fmt: skip
    assert got.returncode == 0, got.stderr[-5000:]
    from ttscale import store

    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            cells = store.read_cells(conn)
            cell = cells.filter(pl.col("verifier").str.starts_with("learned:")).row(0, named=True)
            candidates = store.read_candidates(conn, [cell["cell_id"]], with_text=True)
    finally:
        engine.dispose()
    assert cell["verifier"] == name  # the spec holds the folder and its fingerprint
    config = json.loads((model / "config.json").read_text())
    assert cell["verifier_params"] == config["backbone_n_params"] + config["head_n_params"]
    assert cell["verifier_flops"] == 2 * cell["verifier_params"] * cell["n_verifier_tokens"] > 0
    assert candidates.height == 6
    for text, scores in candidates.select("text", "step_scores").iter_rows():
        assert len(scores) == len(split_steps(text)) and all(0.0 <= s <= 1.0 for s in scores)


def test_learn_commands_refuse_bad_input_in_one_line(tmp_path):
    env = {"TTSCALE_HOME": str(tmp_path / "home"), "TTSCALE_DATABASE_URL": sqlite_store(tmp_path)}
    cases = [
        (["learn", "train", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")], "is not a step dataset"),
        (["learn", "dataset", "no-such-sweep", "--out", str(tmp_path / "d")], "SWEEP_OR_CELL: no sweep or cell 'no-such-sweep'"),
        (["learn", "dataset", "x", "--out", str(tmp_path / "d"), "--split", "0.5,0.5"], "--split: give 3 fractions"),
        (["run", "--model", "scripted", "--strategy", "best_of_n", "--verifier", f"learned:{tmp_path / 'none'}"],
         "--verifier: learned model folder"),
        (["run", "--model", "scripted", "--strategy", "best_of_n", "--verifier", "learned"], "takes an argument: write learned:PATH"),
    ]  # fmt: skip
    for args, message in cases:
        got = ttscale(*args, env=env, timeout=120)
        lines = got.stderr.strip().splitlines()
        assert got.returncode == 2 and len(lines) == 1 and message in lines[0], (args, got.stderr[-2000:])
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()  # nothing written
