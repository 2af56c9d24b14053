"""What a budget costs: FLOPs per problem in the two conventions, and the cost of the first n of
a cell's N candidates (the one home of prefix scaling: frontiers, MLflow metrics and the CLI's
summaries all take it from here).

- `charged`: FLOPs as the reference and Snell et al. 2024 charge them, 2 · params · generated
  tokens (policy) plus the verifier's; the default axis, comparable with published figures.
- `computed`: what the engine computed, the policy's prompt tokens not served from its prefix
  cache added (a search re-sends its growing path each iteration; most of it is cached).

The first n of N candidates cost n/N of the generated tokens (exact for independent samples and
for whole DVTS subtrees, the strategies whose prefixes are runs, and at n = N for every
strategy). A prompt shared by all N samples of a problem (Best-of-N, majority: one request per
problem) costs the same at any n; DVTS re-sends each subtree's own prompts, n/N of them.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

FlopsAxis = Literal["charged", "computed"]
FLOPS_AXES: tuple[FlopsAxis, ...] = ("charged", "computed")


def shared_prompt(prefix_unit: pl.Expr) -> pl.Expr:
    """Whether a cell's N samples share one prompt per problem (independent samples: prefix unit 1)."""
    return prefix_unit.fill_null(0) == 1


def prefix_cost(scaled: pl.Expr, fixed: pl.Expr | float, n: pl.Expr, n_cell: pl.Expr, shared: pl.Expr) -> pl.Expr:
    """The cost of the first `n` of `n_cell` candidates from the whole cell's: the part that grows
    with samples (`scaled`) times n/N, plus the prompt part (`fixed`), times n/N unless the
    prompt is `shared` by all samples."""
    share = n.cast(pl.Float64) / n_cell
    fixed = fixed if isinstance(fixed, pl.Expr) else pl.lit(fixed)
    return scaled * share + fixed * pl.when(shared).then(pl.lit(1.0)).otherwise(share)


def problem_flops(runs: pl.DataFrame, axis: FlopsAxis = "charged") -> pl.DataFrame:
    """cell_id, flops_scaled, flops_prompt: mean FLOPs per problem of each cell on `axis`, split
    into the part that grows with samples (generated tokens, the verifier) and the prompt part
    (the computed axis only). A cell whose FLOPs are 0 or unknown (imported: parameter counts or
    token counts not recorded) gets null: unknown compute must not look free on a FLOPs axis."""
    if axis not in FLOPS_AXES:
        raise ValueError(f"FLOPs axis must be one of {FLOPS_AXES}, got {axis!r}")
    charged = pl.col("policy_flops").cast(pl.Float64)
    verifier = pl.col("verifier_flops").cast(pl.Float64).fill_null(0.0)
    prompt = (pl.col("policy_flops_computed").cast(pl.Float64) - charged).clip(lower_bound=0.0) if axis == "computed" else pl.lit(0.0)
    known = charged.is_not_null().all() & ((charged.sum() + verifier.sum()) > 0)
    return runs.group_by("cell_id").agg(
        pl.when(known).then((charged + verifier).mean()).alias("flops_scaled"),
        pl.when(known).then(prompt.mean()).alias("flops_prompt"),
    )
