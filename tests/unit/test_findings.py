"""The findings and the headline: hand-counted pairs, and the synthetic sweep end to end."""

from __future__ import annotations

import math

import polars as pl
import pytest

from benchmarks.synthetic_sweep import synthetic_sweep
from ttscale.analysis.findings import _policy_vs_fixed, _verifier_vs_majority, findings, headline
from ttscale.analysis.report import build_report


def _points(rows: list[tuple[str, str, int, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"model": "m", "dataset": "d", "config": c, "method": m, "option": f"{c}:{m}", "n": n, "problem_id": p, "correct": x}
         for c, m, n, p, x in rows]
    )  # fmt: skip


def test_verifier_against_majority_is_paired_on_the_same_problems():
    # n=4, problems a..e. Majority voting of best_of_n: 1,0,0,1,0 (40%). Weighted: 1,1,1,1,0 (80%).
    # Per-problem differences 0,1,1,0,0: mean 0.4, sd sqrt(0.3) = 0.5477; t(0.975, 4) = 2.776:
    # half-width 2.776 * 0.5477 / sqrt(5) = 0.680 -> [-0.280, +1.080]: not conclusive.
    rows = [("best_of_n", "majority", 4, p, x) for p, x in zip("abcde", (1, 0, 0, 1, 0), strict=True)]
    rows += [("best_of_n", "weighted", 4, p, x) for p, x in zip("abcde", (1, 1, 1, 1, 0), strict=True)]
    found = _verifier_vs_majority(_points(rows), "m", "d")
    assert (found.option, found.n) == ("best_of_n:weighted", 4)
    half = 2.776 * math.sqrt(0.3) / math.sqrt(5)
    assert f"+40.0 points [{100 * (0.4 - half):+.1f}, {100 * (0.4 + half):+.1f}]" in found.text
    assert "80.0% vs 40.0%" in found.text and "not conclusive" in found.text


def test_beam_search_majority_counts_as_verifier_guided():
    rows = [("best_of_n", "majority", 2, p, 0) for p in "ab"] + [("beam_search", "majority", 2, p, 1) for p in "ab"]
    found = _verifier_vs_majority(_points(rows), "m", "d")
    assert found.option == "beam_search:majority" and "+100.0 points" in found.text


def test_adaptive_is_paired_with_the_best_fixed_option_at_its_n():
    # n=4, problems a..d. Fixed: best_of_n:weighted 1,1,0,0 (50%, the best), majority 0,0,0,0.
    # adaptive:weighted 1,1,1,0 (75%): differences 0,0,1,0 -> mean 0.25, sd 0.5, t(0.975, 3) = 3.182:
    # half-width 3.182 * 0.5 / 2 = 0.796 -> [-0.546, +1.046]. FLOPs 300 vs 200 per problem: 1.50x.
    rows = [("best_of_n", "weighted", 4, p, x) for p, x in zip("abcd", (1, 1, 0, 0), strict=True)]
    rows += [("best_of_n", "majority", 4, p, 0) for p in "abcd"]
    rows += [("adaptive", "weighted", 4, p, x) for p, x in zip("abcd", (1, 1, 1, 0), strict=True)]
    points = _points(rows).with_columns(
        pl.when(pl.col("config") == "adaptive").then(300.0).otherwise(200.0).alias("flops_per_problem")
    )
    (found,) = _policy_vs_fixed(points, "m", "d")
    assert (found.kind, found.option, found.n) == ("policy", "adaptive:weighted", 4)
    half = 3.182 * 0.5 / 2
    assert "75.0% vs 50.0% for best_of_n:weighted" in found.text
    assert f"+25.0 points [{100 * (0.25 - half):+.1f}, {100 * (0.25 + half):+.1f}]" in found.text
    assert "1.50× its FLOPs" in found.text and "no difference shown" in found.text
    assert _policy_vs_fixed(points.filter(pl.col("config") != "adaptive"), "m", "d") == []


@pytest.fixture(scope="module")
def report():
    s = synthetic_sweep(n_problems=40, n=8, seeds=(0, 1), rng_seed=3)
    return build_report(s.cells, s.candidates, s.runs, s.problems)


def test_findings_cover_every_kind_and_name_their_page(report):
    got = findings(report)
    kinds = {f.kind for f in got}
    assert kinds == {"scaling", "verifier", "compute_optimal", "best", "small_vs_large", "verifier_quality"}
    assert all(f.page in ("frontiers", "compute_optimal", "audit") for f in got)
    assert all("\n" not in f.text and f.text.endswith(".") for f in got)
    best = next(f for f in got if f.kind == "best" and f.model == "small-1b")
    assert "n=1:" in best.text and "n=8:" in best.text and "[" in best.text  # each figure with its interval


def test_headline_recommends_one_strategy_when_choosing_per_bin_does_not_hold_up(report):
    text = headline(report)
    gain_at_8 = report.frontier.filter((pl.col("model") == "large-8b") & (pl.col("bin") == "all") & (pl.col("budget") == 8))["gain"][0]
    assert gain_at_8 <= 0  # on this synthetic sweep, per-bin choice does not generalise
    assert text.startswith("large-8b on math500: at n=1 use ") and "at n=8 use " in text and "on every difficulty" in text
