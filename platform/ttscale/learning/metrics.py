"""How good a step scorer is on labelled steps: ranking (AUC) and calibration (Brier, ECE).

- `auc`: P(a random positive step outscores a random negative one), ties half — the
  Mann-Whitney statistic (as `analysis.verifier_quality` computes it per cell from the store);
  `within` variants average it over the problems that have both classes (what selection among
  one problem's candidates sees: the pooled AUC also rewards knowing which problems are easy);
- `brier`: mean squared error of the score against the target (a soft label is a target too);
- `ece`: expected calibration error over `n_bins` equal-width bins of the score (Guo et al.
  2017): Σ_b (n_b / n) · |mean score_b − mean target_b|.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def auc(scores: Any, positive: Any) -> float | None:
    """ROC AUC of `scores` for boolean `positive`, average ranks for ties; None with one class only."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average rank over each run of equal scores
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(scores: Any, target: Any) -> float:
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.mean((s - t) ** 2)) if len(s) else float("nan")


def ece(scores: Any, target: Any, n_bins: int = 10) -> float:
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if not len(s):
        return float("nan")
    bins = np.minimum((s * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            total += inside.mean() * abs(s[inside].mean() - t[inside].mean())
    return float(total)


def auc_within(scores: Any, positive: Any, groups: Any) -> tuple[float | None, int]:
    """Mean AUC over the groups that hold both classes, and how many do."""
    s, y, g = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool), np.asarray(groups)
    found = [a for key in np.unique(g) if (a := auc(s[g == key], y[g == key])) is not None]
    return (float(np.mean(found)) if found else None), len(found)


def step_metrics(scores: Any, label_soft: Any, label_hard: Any, is_final: Any, problems: Any) -> dict:
    """The metrics a trained head reports on one split: `step_auc` (all labelled steps, hard
    labels), `final_auc` (the steps candidates end on: how the head ranks whole solutions under
    `last` aggregation), each also within problems (`*_within`, over `n_problems_mixed`
    problems), Brier and ECE against the soft label, and counts."""
    s = np.asarray(scores, dtype=np.float64)
    hard = np.asarray(label_hard, dtype=bool)
    final = np.asarray(is_final, dtype=bool)
    groups = np.asarray(problems)
    final_within, n_mixed = auc_within(s[final], hard[final], groups[final]) if final.any() else (None, 0)
    out = {
        "n_steps": int(len(s)),
        "n_problems": int(len(np.unique(groups))),
        "n_positive": int(hard.sum()),
        "step_auc": auc(s, hard),
        "step_auc_within": auc_within(s, hard, groups)[0],
        "final_auc": auc(s[final], hard[final]) if final.any() else None,
        "final_auc_within": final_within,
        "n_problems_mixed": n_mixed,
        "n_final": int(final.sum()),
        "brier": brier(s, label_soft),
        "ece": ece(s, label_soft),
        "mean_score": float(s.mean()) if len(s) else None,
        "mean_soft_label": float(np.mean(label_soft)) if len(s) else None,
    }
    return {k: (round(v, 4) if isinstance(v, float) and v == v else v) for k, v in out.items()}
