"""The compute-optimal policy a sweep supports (`ttscale report SWEEP --policy FILE`).

For one model and dataset of the sweep (Snell et al. 2024, arXiv 2408.03314, §3.2 and §5.3):

- bins are `predicted` bins (`analysis.difficulty`): quantiles of each problem's mean verifier
  score over the largest independent-sample cell, the one difficulty a new problem's own samples
  can estimate without its answer. The threshold between two neighbouring bins is the midpoint
  of the easier bin's lowest and the harder bin's highest score;
- per bin and budget n, the option (configuration × selection method, as `frontier` compares
  them at generation budget n) with the best accuracy on *all* of the bin's problems; ties go to
  fewer FLOPs, then to the option's name, as in `frontier.compute_optimal`. The frontier's
  two-fold estimate (chosen on one half, scored on the other) is what the choice is worth; the
  policy records the in-sample accuracy beside it;
- only budgets every bin has an option at are kept, so the policy answers for every bin.

Strategies that apply a policy themselves (`adaptive`) are no option: a policy never chooses one.
Pure: frames in (as `store.read_*` returns them), a `ttscale.policy.Policy` out.
"""

from __future__ import annotations

import polars as pl

from ttscale.analysis.cells import describe_cells
from ttscale.analysis.difficulty import difficulty_bins, reference_cells
from ttscale.analysis.frontier import frontier_points
from ttscale.analysis.verdicts import problem_verdicts
from ttscale.errors import SpecError
from ttscale.policy import POLICY_VERSION, DifficultyPredictor, Policy, PolicyChoice, ScoreBin
from ttscale.spec import as_cell
from ttscale.strategy_params import PARAMS_BY_NAME

POLICY_STRATEGIES = tuple(name for name, p in PARAMS_BY_NAME.items() if p.applies_policy)
"""Strategies a policy cannot choose (they apply one)."""


def learn_policy(
    cells: pl.DataFrame,
    candidates: pl.DataFrame,
    runs: pl.DataFrame | None = None,
    *,
    code_version: str,
    model: str | None = None,
    dataset: str | None = None,
    n_bins: int = 5,
    sweep: dict | None = None,
) -> Policy:
    """The policy of one (model, dataset) of the generating `cells` (`store.read_cells` rows with
    `spec`), from their `candidates` and, for FLOPs, `runs`. `model`/`dataset` may be left out
    when the cells have one; `sweep` (`store.read_sweep`) names the sweep it came from."""
    cells = cells.filter(~pl.col("strategy").is_in(POLICY_STRATEGIES))
    described = describe_cells(cells)
    model, dataset = _pick(described, model, dataset)
    described = described.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
    candidates = candidates.filter(pl.col("cell_id").is_in(described["cell_id"].implode()))
    n_cells = dict(zip(described["cell_id"].to_list(), described["n_cell"].to_list(), strict=True))
    verdicts = problem_verdicts(candidates, mode="prefix", n_cells=n_cells)
    bins = difficulty_bins(verdicts.problem_stats, described, how="predicted", n_bins=n_bins)
    points = frontier_points(verdicts.per_problem, described, runs, "charged")
    chosen = _choose(points.join(bins.select("problem_id", "bin"), on="problem_id", how="inner"))
    if chosen.height == 0:
        raise SpecError(f"policy: no option has verdicts on the binned problems of {model} on {dataset}")
    cell_of = described.group_by("config").agg(pl.col("cell_id").min())
    specs = dict(zip(cells["cell_id"].to_list(), cells["spec"].to_list(), strict=True))
    choices = []
    for row in chosen.join(cell_of, on="config", how="left").sort("bin", "n").iter_rows(named=True):
        spec = as_cell(specs[row["cell_id"]])
        choices.append(
            PolicyChoice(
                bin=row["bin"], n=row["n"], strategy=spec.strategy, verifier=spec.verifier, aggregation=spec.aggregation,
                selection=row["method"], accuracy=row["accuracy"], n_problems=row["n_problems"],
                flops_per_problem=row["flops_per_problem"],
            )
        )  # fmt: skip
    sweep = sweep or {}
    return Policy(
        version=POLICY_VERSION, model=model, dataset=dataset, sweep_id=sweep.get("sweep_id"), sweep_name=sweep.get("name"),
        sweep_code_version=sweep.get("code_version"), code_version=code_version,
        predictor=_predictor(bins, described, verdicts.problem_stats), choices=tuple(choices),
    )  # fmt: skip


def _pick(described: pl.DataFrame, model: str | None, dataset: str | None) -> tuple[str, str]:
    pairs = described.select("model", "dataset").unique().sort("model", "dataset")
    if model is not None:
        pairs = pairs.filter(pl.col("model") == model)
    if dataset is not None:
        pairs = pairs.filter(pl.col("dataset") == dataset)
    if pairs.height == 1:
        return pairs.row(0)
    have = ", ".join(f"{m} on {d}" for m, d in described.select("model", "dataset").unique().sort("model", "dataset").iter_rows())
    if pairs.height == 0:
        raise SpecError(f"policy: no cells of {model or 'any model'} on {dataset or 'any dataset'}; have {have or 'none'}")
    raise SpecError(f"policy: a policy is for one model and dataset; name them (--policy-model, --policy-dataset) among {have}")


def _choose(rows: pl.DataFrame) -> pl.DataFrame:
    """bin, n, config, method, accuracy, n_problems, flops_per_problem: the best option per bin
    and n (ties: fewer FLOPs, then the option's name), at budgets every bin has."""
    stats = rows.group_by("bin", "n", "config", "method", "option").agg(
        pl.col("correct").mean().alias("accuracy"),
        pl.col("problem_id").n_unique().cast(pl.Int64).alias("n_problems"),
        pl.col("flops_per_problem").first(),
    )
    best = (
        stats.with_columns(pl.col("flops_per_problem").fill_null(0.0).alias("_f"))
        .sort(["bin", "n", "accuracy", "_f", "option"], descending=[False, False, True, False, False])
        .group_by("bin", "n", maintain_order=True)
        .first()
        .drop("_f")
    )
    n_bins = best["bin"].n_unique()
    full = best.group_by("n").agg(pl.len().alias("_bins")).filter(pl.col("_bins") == n_bins).select("n")
    return best.join(full, on="n", how="semi").with_columns(pl.col("bin").cast(pl.Int64))


def _predictor(bins: pl.DataFrame, described: pl.DataFrame, stats: pl.DataFrame) -> DifficultyPredictor:
    """Thresholds between neighbouring bins, and the verifier and aggregation of the scores."""
    ref = reference_cells(described, stats, scored=True).join(described, on=["cell_id", "model", "dataset"], how="inner")
    scorers = ref.select("verifier", "aggregation").unique()
    if scorers.height != 1:
        found = ", ".join(f"{v}/{a}" for v, a in scorers.sort("verifier", "aggregation").iter_rows())
        raise SpecError(f"policy: the difficulty scores must come from one verifier and aggregation; the reference cells have {found}")
    verifier, aggregation = scorers.row(0)
    ranges = bins.group_by("bin").agg(pl.col("difficulty").min().alias("lo"), pl.col("difficulty").max().alias("hi")).sort("bin")
    rows = list(ranges.iter_rows(named=True))
    out = [
        ScoreBin(bin=r["bin"], min_score=(r["lo"] + nxt["hi"]) / 2) for r, nxt in zip(rows, rows[1:], strict=False)
    ]
    out.append(ScoreBin(bin=rows[-1]["bin"], min_score=None))
    return DifficultyPredictor(
        verifier=verifier, aggregation=aggregation, n_reference_samples=int(ref["n_cell"].max()), bins=tuple(out)
    )
