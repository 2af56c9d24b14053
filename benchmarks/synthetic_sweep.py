"""Synthetic sweeps with known structure, for tests, benchmarks and demos of the analysis.

Frames have exactly the columns `store.read_cells/read_candidates/read_problem_runs/
read_problems` return, so everything downstream runs on them unchanged. Generated with numpy
from an explicit seed (no global RNG), vectorised: millions of candidates in seconds.

The model behind the numbers: problem p has difficulty d_p ~ U(0, 1); a candidate of model m
with strategy s is correct with probability sigmoid(ability_m + boost_s - 6·(d_p - 0.5));
wrong answers fall into a few distractor classes (geometric), 3% are unparsed; verifier
scores are higher for correct candidates. FLOPs are 2 · params · tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ttscale.spec import CellSpec, DatasetSpec
from ttscale.strategy_params import BeamSearchParams, BestOfNParams, DVTSParams, MajorityParams

STRATEGY_BOOST = {"best_of_n": 0.0, "majority": 0.0, "dvts": 0.3, "beam_search": 0.5}


@dataclass(frozen=True)
class SyntheticModel:
    name: str
    ability: float
    """Logit shift of the per-candidate probability of a correct answer."""
    params: int
    """Parameter count, for FLOPs = 2 · params · tokens."""


DEFAULT_MODELS = (SyntheticModel("small-1b", -0.6, 1_000_000_000), SyntheticModel("large-8b", 0.9, 8_000_000_000))
VERIFIER_PARAMS = 8_000_000_000


@dataclass(frozen=True)
class SyntheticSweep:
    cells: pl.DataFrame
    candidates: pl.DataFrame
    runs: pl.DataFrame
    problems: pl.DataFrame


def _strategy(name: str, beam_width: int):
    if name == "best_of_n":
        return BestOfNParams()
    if name == "majority":
        return MajorityParams()
    if name == "dvts":
        return DVTSParams(beam_width=beam_width)
    if name == "beam_search":
        return BeamSearchParams(beam_width=beam_width)
    raise ValueError(f"unknown strategy {name!r}")


def synthetic_sweep(
    *,
    n_problems: int = 50,
    n: int = 16,
    strategies: tuple[str, ...] = ("best_of_n", "dvts", "beam_search"),
    seeds: tuple[int, ...] = (0, 1),
    models: tuple[SyntheticModel, ...] = DEFAULT_MODELS,
    dataset: str = "math500",
    rng_seed: int = 0,
    beam_width: int = 4,
) -> SyntheticSweep:
    """A sweep of len(models) × len(strategies) × len(seeds) cells, each with N = `n` candidates per problem."""
    rng = np.random.default_rng(rng_seed)
    problem_ids = np.array([f"test/{i:05d}.json" for i in range(n_problems)])
    difficulty = rng.uniform(0.0, 1.0, n_problems)
    levels = np.clip((difficulty * 5).astype(np.int64) + 1, 1, 5)
    problems = pl.DataFrame(
        {
            "dataset": dataset,
            "problem_id": problem_ids,
            "answer": [f"a{i}" for i in range(n_problems)],
            "level": levels,
            "subject": "Algebra",
        }
    )

    cell_rows, cand_parts, run_parts = [], [], []
    for model in models:
        for strategy in strategies:
            for seed in seeds:
                verifier = None if strategy == "majority" else "synthetic_prm"
                spec = CellSpec(
                    model=model.name,
                    verifier=verifier,
                    strategy=_strategy(strategy, beam_width),
                    n=n,
                    dataset=DatasetSpec(name=dataset),
                    seed=seed,
                )
                cell_rows.append(
                    {
                        "cell_id": spec.cell_id,
                        "model": model.name,
                        "verifier": verifier,
                        "aggregation": spec.aggregation,
                        "strategy": strategy,
                        "n": n,
                        "beam_width": getattr(spec.strategy, "beam_width", None),
                        "dataset": dataset,
                        "seed": seed,
                        "spec": spec.canonical_json(),
                        "policy_params": model.params,
                        "verifier_params": VERIFIER_PARAMS if verifier else 0,
                    }
                )
                cands, runs = _cell_frames(rng, spec.cell_id, problem_ids, difficulty, model, strategy, n, verifier)
                cand_parts.append(cands)
                run_parts.append(runs)
    cells = pl.DataFrame(cell_rows)
    return SyntheticSweep(cells, pl.concat(cand_parts), pl.concat(run_parts), problems)


def _cell_frames(
    rng: np.random.Generator,
    cell_id: str,
    problem_ids: np.ndarray,
    difficulty: np.ndarray,
    model: SyntheticModel,
    strategy: str,
    n: int,
    verifier: str | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    n_problems = len(problem_ids)
    size = n_problems * n
    logit = model.ability + STRATEGY_BOOST[strategy] - 6.0 * (difficulty - 0.5)
    p = 1.0 / (1.0 + np.exp(-logit))
    prob = np.repeat(p, n)
    correct = rng.random(size) < prob
    unparsed = rng.random(size) < 0.03
    correct &= ~unparsed
    distractor = 1 + np.minimum(rng.geometric(0.45, size) - 1, 20)
    raw_class = np.where(unparsed, -1, np.where(correct, 0, distractor))
    if verifier:
        score = np.clip(np.where(correct, rng.normal(0.72, 0.18, size), rng.normal(0.45, 0.2, size)), 0.0, 1.0)
    else:
        score = np.full(size, np.nan)
    tokens = rng.integers(150, 450, size)
    prompt_tokens = 120
    frame = pl.DataFrame(
        {
            "cell_id": cell_id,
            "problem_id": np.repeat(problem_ids, n),
            "idx": np.tile(np.arange(n, dtype=np.int64), n_problems),
            "_raw": raw_class,
            "correct": correct,
            "score": score,
            "n_prompt_tokens": np.full(size, prompt_tokens, dtype=np.int64),
            "n_generated_tokens": tokens,
        }
    ).with_columns(pl.col("score").fill_nan(None))
    # Classes are numbered by first occurrence within the problem, as grading numbers them.
    frame = frame.with_columns(
        pl.when(pl.col("_raw") >= 0).then(pl.col("idx").min().over("problem_id", "_raw")).alias("_first")
    )
    frame = frame.with_columns(
        pl.when(pl.col("_raw") < 0)
        .then(pl.lit(-1, dtype=pl.Int64))
        .otherwise(pl.col("_first").rank("dense").over("problem_id").cast(pl.Int64) - 1)
        .alias("answer_class"),
        pl.when(pl.col("_raw") < 0)
        .then(None)
        .otherwise(pl.format("{}-{}", pl.col("problem_id").str.slice(5, 5), pl.col("_raw")))
        .alias("answer"),
        (2 * model.params * pl.col("n_generated_tokens")).alias("policy_flops"),
    )
    candidates = frame.select(
        "cell_id", "problem_id", "idx", "answer", "answer_class", "correct", "score",
        "n_prompt_tokens", "n_generated_tokens", "policy_flops",
    )  # fmt: skip
    verifier_params = VERIFIER_PARAMS if verifier else 0
    runs = (
        frame.group_by("problem_id", maintain_order=True)
        .agg(pl.col("n_generated_tokens").sum())
        .with_columns(
            pl.lit(cell_id).alias("cell_id"),
            pl.lit(prompt_tokens, dtype=pl.Int64).alias("n_prompt_tokens"),
            (pl.col("n_generated_tokens") + prompt_tokens).alias("n_verifier_tokens"),
        )
        .with_columns(
            (2 * model.params * (pl.col("n_prompt_tokens") + pl.col("n_generated_tokens"))).alias("policy_flops"),
            (2 * verifier_params * pl.col("n_verifier_tokens")).alias("verifier_flops"),
            pl.lit(0.0).alias("elapsed_s"),
        )
        .select("cell_id", "problem_id", "n_prompt_tokens", "n_generated_tokens", "n_verifier_tokens",
                "policy_flops", "verifier_flops", "elapsed_s")  # fmt: skip
    )
    return candidates, runs
