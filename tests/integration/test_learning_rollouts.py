"""Roll-outs for unlabelled steps through the real entry point: a beam-search sweep stored, then
`ttscale learn dataset --rollouts N` — the pruned steps' continuations sampled on the cell's own
policy, stored and charged as a roll-out cell of no sweep, their labels in the dataset and the
card, a rerun reusing them — on the scripted policy, and at small size on the bundled SmolLM2-135M
in vLLM."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.cli import ttscale
from tests.integration.test_learning_loop import SCRIPTED_SWEEP
from tests.integration.test_orchestration_vllm import _model_cache
from tests.orchestration import env_for, sqlite_store
from ttscale import store
from ttscale.verifiers import split_steps


def stored(url: str, cell_id: str) -> dict:
    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "cell": store.read_cells(conn, cell_ids=[cell_id]).row(0, named=True),
                "runs": store.read_problem_runs(conn, [cell_id]),
                "candidates": store.read_candidates(conn, [cell_id], with_text=True),
                "nodes": store.read_nodes_of_cells(conn, [cell_id]),
                "verdicts": store.read_verdicts(conn, [cell_id]),
                "n_cells": store.read_cells(conn).height,
                "sweep_cells": sum(store.read_cells(conn, s).filter(pl.col("cell_id") == cell_id).height for s in store.read_sweeps(conn)["sweep_id"]),
            }
    finally:
        engine.dispose()


def unlabelled(rows: pl.DataFrame) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(m, p, tuple(s)) for m, p, s in rows.filter(pl.col("n_candidates") == 0).select("model", "problem_id", "steps").iter_rows()}


def labelled_from_rollouts(data, keys) -> pl.DataFrame:  # noqa: ANN001
    rows = pl.read_parquet(data / "steps.parquet")
    return rows.filter(pl.struct("model", "problem_id", "steps").map_elements(lambda r: (r["model"], r["problem_id"], tuple(r["steps"])) in keys, return_dtype=pl.Boolean))


def test_rollouts_label_pruned_steps_charged_and_stored_as_their_own_cell_then_reused(tmp_path, mlflow_uri):
    url = sqlite_store(tmp_path)
    env = env_for(tmp_path / "home", url, mlflow_uri)
    spec = tmp_path / "source.yaml"
    spec.write_text(SCRIPTED_SWEEP, encoding="utf-8")
    assert ttscale("sweep", "run", str(spec), env=env, timeout=600).returncode == 0

    plain = tmp_path / "plain"
    got = ttscale("learn", "dataset", "learn-source", "--out", str(plain), env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    before = unlabelled(pl.read_parquet(plain / "steps.parquet"))
    assert json.loads((plain / "card.json").read_text())["n_nodes_unlabelled"] > 0 and before  # pruned beam steps

    data = tmp_path / "rolled"
    got = ttscale("learn", "dataset", "learn-source", "--out", str(data), "--rollouts", "2", env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    card = json.loads((data / "card.json").read_text())
    r = card["rollouts"]
    assert (r["n"], r["min_candidates"], r["max_prefixes"]) == (2, 1, None)
    assert r["n_prefixes"] == r["n_prefixes_eligible"] == r["n_prefixes_labelled"] == len(before)
    assert card["n_nodes_unlabelled"] == 0 and card["balance"]["labelled"] == card["n_rows"]
    now = labelled_from_rollouts(data, before)  # every prefix nothing labelled before: labelled by its roll-outs alone
    assert now.height == len(before) and now["label_soft"].null_count() == 0
    assert (now["n_candidates"] == now["n_rollout_candidates"]).all() and (now["n_candidates"] >= 2).all()
    assert "roll-outs" in card["label"] and "n_rollout_candidates" in card["label"]

    (entry,) = r["cells"]
    cell_id = entry["cell_id"]
    s = stored(url, cell_id)
    cell = s["cell"]
    assert (cell["strategy"], cell["status"], cell["verifier"], cell["n"], cell["model"]) == ("rollout", "done", None, 2, "scripted")
    assert s["sweep_cells"] == 0  # of no sweep: no report, frontier or policy reads it
    assert s["verdicts"].height == 0  # nothing selected among roll-outs
    assert s["candidates"].height == entry["n_candidates"] == 2 * len(before) and s["candidates"]["correct"].null_count() == 0
    # charged like any generation: the cell's totals are its problems', FLOPs 2 · params · tokens
    assert cell["n_generated_tokens"] == s["runs"]["n_generated_tokens"].sum() == s["candidates"]["n_generated_tokens"].sum() > 0
    assert cell["policy_flops"] == 2 * cell["policy_params"] * cell["n_generated_tokens"] and cell["policy_params"] == 1_000_000
    assert (entry["n_generated_tokens"], entry["policy_flops"], entry["n_problems_sampled_now"]) == (cell["n_generated_tokens"], cell["policy_flops"], 24)
    assert r["n_generated_tokens"] == cell["n_generated_tokens"]
    # each candidate is its prefix (a `prefix` node) and a continuation: its steps begin with the prefix's
    prefixes = {(row["problem_id"], row["node_id"]): row["text"] for row in s["nodes"].filter(pl.col("kind") == "prefix").iter_rows(named=True)}
    assert len(prefixes) == len(before)
    for c in s["candidates"].iter_rows(named=True):
        parent = s["nodes"].filter((pl.col("problem_id") == c["problem_id"]) & (pl.col("node_id") == c["leaf_node"]))["parent_id"][0]
        prefix = prefixes[(c["problem_id"], parent)]
        assert c["text"].startswith(prefix) and ("scripted", c["problem_id"], tuple(split_steps(prefix))) in before
    assert f"roll-out cell {cell_id}" in got.stdout and "sampled 24 problems" in got.stdout

    again = tmp_path / "again"
    got = ttscale("learn", "dataset", "learn-source", "--out", str(again), "--rollouts", "2", env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    assert "already stored" in got.stdout
    second = json.loads((again / "card.json").read_text())["rollouts"]
    assert second["cells"][0]["cell_id"] == cell_id and second["cells"][0]["n_problems_sampled_now"] == 0
    s2 = stored(url, cell_id)
    assert s2["cell"]["n_generated_tokens"] == cell["n_generated_tokens"] and s2["candidates"].height == s["candidates"].height
    assert s2["n_cells"] == s["n_cells"]  # nothing sampled or registered again
    assert pl.read_parquet(again / "steps.parquet").equals(pl.read_parquet(data / "steps.parquet"))

    got = ttscale("report", cell_id, env=env, timeout=120)
    assert got.returncode == 2 and "roll-out cells label stored steps" in got.stderr

    # bad options: one line naming the option, exit 2, nothing sampled, stored or written
    for args, message in [
        (["--rollouts", "-1"], "--rollouts: must be from 0 to 4096, got -1"),
        (["--rollouts", "2", "--min-candidates", "0"], "--min-candidates: must be >= 1, got 0"),
        (["--rollouts", "2", "--max-rollout-prefixes", "0"], "--max-rollout-prefixes: must be >= 1, got 0"),
        (["--min-candidates", "3"], "--min-candidates: only with --rollouts N"),
    ]:
        got = ttscale("learn", "dataset", "learn-source", "--out", str(tmp_path / "bad"), *args, env=env, timeout=120)
        lines = got.stderr.strip().splitlines()
        assert got.returncode == 2 and len(lines) == 1 and message in lines[0], (args, got.stderr[-2000:])
    assert not (tmp_path / "bad").exists() and stored(url, cell_id)["n_cells"] == s["n_cells"]


ROLLOUT_SOURCE = """\
name: rollout-source
models: [smollm2-135m]
verifiers: [arithmetic]
strategies:
  - name: beam_search
    beam_width: 2
    n_iterations: 2
budgets: [4]
datasets:
  - name: ladder
    levels: [2]
    limit: 2
sampling:
  max_tokens: 48
  step_max_tokens: 24
shard_size: 2
retries: 0
"""


@pytest.mark.vllm
def test_rollouts_on_the_bundled_model_continue_pruned_steps_with_the_cells_settings(tmp_path, mlflow_uri):
    url = sqlite_store(tmp_path)
    env = env_for(tmp_path / "home", url, mlflow_uri, TTSCALE_MODEL_CACHE=_model_cache(), TTSCALE_KV_CACHE_GIB="2")
    spec = tmp_path / "source.yaml"
    spec.write_text(ROLLOUT_SOURCE, encoding="utf-8")
    got = ttscale("sweep", "run", str(spec), env=env, timeout=1200)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-3000:]
    plain = tmp_path / "plain"
    assert ttscale("learn", "dataset", "rollout-source", "--out", str(plain), env=env, timeout=300).returncode == 0
    before = unlabelled(pl.read_parquet(plain / "steps.parquet"))
    assert before  # beam search pruned some steps

    data = tmp_path / "rolled"
    got = ttscale("learn", "dataset", "rollout-source", "--out", str(data), "--rollouts", "2", "--max-rollout-prefixes", "3",
                  env=env, timeout=1200)  # fmt: skip
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-3000:]
    r = json.loads((data / "card.json").read_text())["rollouts"]
    chosen = min(3, len(before))
    assert r["n_prefixes"] == r["n_prefixes_labelled"] == chosen and r["n_prefixes_eligible"] == len(before)
    now = labelled_from_rollouts(data, before)
    assert now.filter(pl.col("label_soft").is_not_null()).height == chosen  # three prefixes labelled now, the rest not
    assert (now.filter(pl.col("n_rollout_candidates") > 0)["n_rollout_candidates"] == 2).all()

    (entry,) = r["cells"]
    s = stored(url, entry["cell_id"])
    cell = s["cell"]
    assert cell["policy_params"] == 134_515_008 and cell["status"] == "done"  # the bundled SmolLM2-135M
    source = json.loads(store_spec(url, "beam_search"))
    rollout = json.loads(cell["spec"])
    assert {k: rollout[k] for k in ("model", "dataset", "seed", "sampling", "fidelity")} == {
        k: source[k] for k in ("model", "dataset", "seed", "sampling", "fidelity")
    }  # the source cell's own settings: temperature, top-p, token limits, prompt (the model's)
    assert s["candidates"].height == 2 * chosen and s["candidates"]["correct"].null_count() == 0
    assert 0 < s["candidates"]["n_generated_tokens"].max() <= 48  # a continuation stops at max_tokens
    assert cell["n_generated_tokens"] == s["candidates"]["n_generated_tokens"].sum() == r["n_generated_tokens"]
    assert cell["policy_flops"] == 2 * 134_515_008 * cell["n_generated_tokens"] == r["policy_flops"]
    assert cell["n_prompt_tokens"] > 0 and s["runs"]["n_policy_calls"].sum() == chosen  # one request per prefix


def store_spec(url: str, strategy: str) -> str:
    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            return store.read_cells(conn).filter(pl.col("strategy") == strategy)["spec"][0]
    finally:
        engine.dispose()
