"""Each verifier against the best other at equal n (`analysis.verifier_gain`): hand-counted
pairs, which methods count, and the report's table, note and finding on a synthetic sweep
with a learned verifier beside another."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from benchmarks.synthetic_sweep import synthetic_sweep
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.findings import findings
from ttscale.analysis.report import build_report, render, to_json, to_markdown
from ttscale.analysis.verifier_gain import verifier_gain

LEARNED = "learned:/home/u/.ttscale/learn/model@0123456789ab"


def _points(rows: list[tuple[str, str, int, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"model": "m", "dataset": "d", "config": c, "method": m, "option": f"{c}:{m}", "n": n, "problem_id": p, "correct": x}
         for c, m, n, p, x in rows]
    )  # fmt: skip


DESCRIBED = pl.DataFrame(
    [
        {"config": f"{strategy}@{short}", "base_config": strategy, "verifier": verifier, "strategy": strategy}
        for strategy in ("best_of_n", "beam_search")
        for short, verifier in (("arith", "arith"), ("self", "self"), ("learned:model@01234567", LEARNED))
    ]
)


def _rows(config: str, method: str, n: int, verdicts: str) -> list[tuple[str, str, int, str, float]]:
    return [(config, method, n, p, float(x)) for p, x in zip("abcde", verdicts, strict=False)]


def test_each_verifier_is_paired_with_the_best_other_on_the_problems_both_ran():
    # best_of_n, weighted, n=4 on problems a..d: arith 1110 (75%), self 1010 (50%), learned
    # 1000 (25%) plus a problem e arith never ran (left out of every pair).
    rows = _rows("best_of_n@arith", "weighted", 4, "1110") + _rows("best_of_n@self", "weighted", 4, "1010")
    rows += _rows("best_of_n@learned:model@01234567", "weighted", 4, "10001")
    got = verifier_gain(_points(rows), DESCRIBED)
    assert got["verifier"].to_list() == ["arith", "self", LEARNED]  # best first
    assert got["reference"].to_list() == ["self", "arith", "arith"]  # the best's reference is the runner-up
    assert got["n_problems"].to_list() == [4, 4, 4]
    assert got["accuracy"].to_list() == [0.75, 0.5, 0.25] and got["reference_accuracy"].to_list() == [0.5, 0.75, 0.75]
    # arith - self: 0,1,0,0 -> +0.25, sd 0.5; learned - arith: 0,-1,-1,0 -> -0.5, sd sqrt(1/3); t(0.975, 3) = 3.182
    assert got["gain"].to_list() == pytest.approx([0.25, -0.25, -0.5])
    half = 3.182 * 0.5 / 2
    assert got["gain_ci_low"][0] == pytest.approx(0.25 - half) and got["gain_ci_high"][1] == pytest.approx(-0.25 + half)
    assert got["gain_ci_low"][2] == pytest.approx(-0.5 - 3.182 * math.sqrt(1 / 3) / 2)
    # accuracy's interval: Wilson over the 4 paired problems, around the accuracy
    assert all(lo <= a <= hi for lo, a, hi in got.select("ci_low", "accuracy", "ci_high").iter_rows())
    assert got["base_config"].unique().to_list() == ["best_of_n"] and got["config"][2] == "best_of_n@learned:model@01234567"


def test_only_methods_that_read_the_verifier_are_compared():
    rows = []
    for config, verdicts in (("best_of_n@arith", "1100"), ("best_of_n@self", "1000"), ("beam_search@arith", "1110"), ("beam_search@self", "0000")):
        for method in ("majority", "pass", "naive"):
            rows += _rows(config, method, 2, verdicts)
    rows += _rows("beam_search@learned:model@01234567", "naive", 4, "1111")  # alone at n=4: nothing to compare
    got = verifier_gain(_points(rows), DESCRIBED)
    groups = set(got.select("base_config", "method", "n").iter_rows())
    # Best-of-N's majority vote never reads a score; pass@n is an oracle; beam search's vote is steered by the verifier
    assert groups == {("best_of_n", "naive", 2), ("beam_search", "naive", 2), ("beam_search", "majority", 2)}
    assert verifier_gain(_points(rows).filter(pl.col("config").str.ends_with("@arith")), DESCRIBED).is_empty()


@pytest.fixture(scope="module")
def learned_sweep():
    """The synthetic sweep's Best-of-N and beam search cells, once under its PRM and once under a
    learned verifier whose scores are noisier (so the PRM should lead)."""
    s = synthetic_sweep(n_problems=40, n=8, seeds=(0,), strategies=("best_of_n", "beam_search"), rng_seed=3)
    twin = {cid: f"{cid[:-2]}ff" for cid in s.cells["cell_id"].to_list()}
    rng = np.random.default_rng(0)
    cells = pl.concat([s.cells, s.cells.with_columns(pl.col("cell_id").replace(twin), pl.lit(LEARNED).alias("verifier"))])
    noisy = s.candidates.with_columns(
        pl.col("cell_id").replace(twin),
        pl.Series("score", np.clip(s.candidates["score"].to_numpy() + rng.normal(0, 0.6, s.candidates.height), 0, 1)),
    )
    runs = pl.concat([s.runs, s.runs.with_columns(pl.col("cell_id").replace(twin))])
    return build_report(cells, pl.concat([s.candidates, noisy]), runs, s.problems)


def test_the_report_table_fits_80_columns_names_its_definition_and_shortens_learned_names(learned_sweep):
    gain = learned_sweep.verifier_gain
    assert set(gain["verifier"].to_list()) == {"synthetic_prm", LEARNED}  # the frame keeps the full name
    assert gain.height == 2 * gain.select("model", "base_config", "method", "n").unique().height
    assert "gain = accuracy - reference accuracy" in learned_sweep.settings["verifier_gain"]
    text = render(learned_sweep, "table", ["verifier_gain", "accuracy", "verifiers"])
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "/home/u/" not in text and "learned:model@01234567" in text
    gain_part = text.split("accuracy (part")[0]
    assert "verifier_gain" in gain_part and "(part" not in gain_part  # one table, not split
    words = " ".join(gain_part.split())
    assert "95% t-interval" in words and "95% Wilson interval" in words  # the note says what the numbers are
    first = gain.row(0, named=True)
    # two models: the first row of each names its model and dataset on a line above its option
    assert gain_part.count(f"{first['model']} on {first['dataset']}:") == 1
    assert f"{first['base_config']}:{first['method']} n={first['n']}" in gain_part
    assert 1 not in gain.filter(pl.col("base_config") == "best_of_n")["n"].to_list()  # one sample: no choice to make
    assert "| large-8b on math500: beam_search:" in to_markdown(learned_sweep, ["verifier_gain"])  # one line per row
    assert f"{100 * first['gain']:+.1f} [" in gain_part
    assert "learned:/home/u" in to_json(learned_sweep, ["verifier_gain"])  # machine-readable: the stored name


def test_the_finding_names_the_largest_lead_with_its_interval(learned_sweep):
    leads = [f for f in findings(learned_sweep) if f.kind == "verifier_gain"]
    assert {f.model for f in leads} == {"small-1b", "large-8b"} and all(f.page == "frontiers" for f in leads)
    gain = learned_sweep.verifier_gain
    for f in leads:
        tops = gain.filter(pl.col("model") == f.model).group_by("base_config", "method", "n", maintain_order=True).first()
        best = tops.sort("gain", descending=True).row(0, named=True)
        assert f.n == best["n"] and f.option == f"{best['config']}:{best['method']}"
        assert f"{100 * best['gain']:+.1f} points [" in f.text and f"on the same {best['n_problems']} problems" in f.text
        assert "/home/u/" not in f.text
    quality = [f.text for f in findings(learned_sweep) if f.kind == "verifier_quality"]
    assert any(t.startswith("Verifier learned:model@01234567 (") for t in quality)
    described = describe_cells(pl.DataFrame({"cell_id": ["a", "b"], "model": "m", "dataset": "d", "strategy": "best_of_n", "n": 4,
                                              "seed": 0, "verifier": ["self", LEARNED], "aggregation": "last"}))  # fmt: skip
    assert described["config"].to_list() == ["best_of_n@self", "best_of_n@learned:model@01234567"]
    assert described["base_config"].to_list() == ["best_of_n", "best_of_n"]
