"""The findings page's pure helpers (`dashboard/finding_views.py`): sections in reading order,
links to the page behind each finding and to the cell whose candidates are behind it, and the
verifier-quality table with its flat-verifier flag."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dashboard"))

import finding_views as fv  # noqa: E402

from ttscale.analysis.findings import Finding  # noqa: E402

CELLS = pl.DataFrame({
    "cell_id": ["bon4", "bon16", "bon16s1", "beam4", "big16"],
    "model": ["1b", "1b", "1b", "1b", "8b"],
    "dataset": "math500",
    "config": ["best_of_n", "best_of_n", "best_of_n", "beam_search", "best_of_n"],
    "n_cell": [4, 16, 16, 4, 16],
    "seed": [0, 0, 1, 0, 0],
})  # fmt: skip
"""`analysis.describe_cells` rows: what the links look cells up in."""

FINDINGS = [
    Finding("scaling", "best_of_n:weighted rises with the budget.", "frontiers", "1b", "math500", "best_of_n:weighted", 16),
    Finding("verifier", "beam_search:naive beats majority voting at n=4.", "frontiers", "1b", "math500", "beam_search:naive", 4),
    Finding("compute_optimal", "Choosing per bin gains +3.0 points [-1.0, +7.0] at n=16.", "compute_optimal", "1b", "math500", None, 16),
    Finding("best", "Best strategy at each budget — n=4: beam_search:naive 40.0% [30.0, 50.0].", "frontiers", "1b", "math500"),
    Finding("small_vs_large", "1b with best_of_n:majority at n=16 beats 8b.", "frontiers", "1b", "math500", "best_of_n:majority", 16),
    Finding("verifier_quality", "Verifier prm (last) separates right from wrong candidates with AUC 0.51.", "audit"),
    Finding("novel_kind", "Something new.", "frontiers"),
]


def test_sections_come_in_reading_order_with_verifier_quality_beside_the_verifier():
    sections = fv.finding_sections(FINDINGS, CELLS, "sweep-1")
    assert [key for key, _, _ in sections] == ["best", "compute_optimal", "small_vs_large", "verifier", "scaling", "other"]
    got = {key: [item.kind for item in items] for key, _, items in sections}
    assert got["verifier"] == ["verifier", "verifier_quality"]
    assert got["other"] == ["novel_kind"]  # a kind the page does not know yet is still shown
    empty = fv.finding_sections([], CELLS, "s")
    assert [key for key, _, items in empty] == ["best", "compute_optimal", "small_vs_large", "verifier", "scaling"]
    assert all(not items and fv.EMPTY[key] for key, _, items in empty)


def test_sentences_name_the_model_and_dataset_only_when_there_are_several():
    one = {item.kind: item.text for _, _, items in fv.finding_sections(FINDINGS, CELLS, "s") for item in items}
    assert one["best"] == FINDINGS[3].text  # the headline names the one model and dataset
    large = Finding("best", "Best strategy at each budget — n=16: best_of_n:majority 60.0% [50.0, 70.0].", "frontiers", "8b", "math500")
    several = {(item.kind, item.text) for _, _, items in fv.finding_sections([*FINDINGS, large], CELLS, "s") for item in items}
    assert ("best", "1b on math500: Best strategy at each budget — n=4: beam_search:naive 40.0% [30.0, 50.0].") in several
    assert ("best", f"8b on math500: {large.text}") in several
    assert ("small_vs_large", "math500: 1b with best_of_n:majority at n=16 beats 8b.") in several
    assert ("verifier_quality", FINDINGS[5].text) in several


def test_each_finding_links_to_its_page_and_to_the_candidates_behind_it():
    links = {f.kind: fv.finding_links(f, CELLS, "sweep-1") for f in FINDINGS}
    page, explorer = links["scaling"]
    assert (page.page, page.script, page.query) == ("frontiers", "pages/frontiers.py", {"sweep": "sweep-1"})
    # the option's configuration, the smallest N that holds n candidates, seed 0 first
    assert explorer.script == "pages/problems.py"
    assert explorer.query == {"sweep": "sweep-1", "cell": "bon16", "n": "16", "method": "weighted"}
    assert links["verifier"][1].query["cell"] == "beam4"
    assert links["small_vs_large"][1].query["cell"] == "bon16"  # the small model's cell, not the 8b one
    assert [link.page for link in links["compute_optimal"]] == ["compute_optimal"]
    assert [link.page for link in links["best"]] == ["frontiers"]
    assert [(link.page, link.query) for link in links["verifier_quality"]] == [("audit", {"sweep": "sweep-1"})]
    # no cell ran the option at that budget: only the page
    lost = Finding("scaling", "x", "frontiers", "1b", "math500", "dvts:weighted", 16)
    assert [link.page for link in fv.finding_links(lost, CELLS, "s")] == ["frontiers"]


def test_link_labels_never_carry_text_from_the_store():
    hostile = "**bold** [x](javascript:alert(1)) :smile: <b>"
    cells = CELLS.with_columns(pl.lit(hostile).alias("model"), pl.lit(hostile).alias("dataset"))
    finding = Finding("scaling", f"{hostile} rises.", "frontiers", hostile, hostile, "best_of_n:weighted", 16)
    links = fv.finding_links(finding, cells, "s")
    assert len(links) == 2
    assert all(hostile not in link.label and "*" not in link.label for link in links)
    assert all(hostile not in link.label for link in fv.headline_links("s") + fv.sweep_links("s"))
    assert [link.page for link in fv.sweep_links("s")] == ["sweeps", "audit"]


def _quality(aucs: list[float | None]) -> pl.DataFrame:
    k = len(aucs)
    return pl.DataFrame({
        "cell_id": [f"c{i}" for i in range(k)], "verifier": "prm", "aggregation": "last", "n_candidates": 64,
        "n_correct": 20, "auc": aucs, "n_problems_mixed": 5, "auc_within": [a if a is None else a - 0.01 for a in aucs],
        "tied_pairs": 0.1,
    }, schema_overrides={"auc": pl.Float64, "auc_within": pl.Float64})  # fmt: skip


def test_verifier_table_flags_a_flat_verifier_and_one_below_chance():
    cells = pl.DataFrame({"cell_id": ["c0", "c1", "c2", "c3"], "model": "1b", "strategy": "best_of_n", "n": [4, 8, 16, 32],
                          "dataset": "math500", "seed": 0})  # fmt: skip
    table = fv.verifier_table(_quality([0.52, 0.81, 0.30, None]), cells)
    flags = dict(zip(table["n"].to_list(), table["flag"].to_list(), strict=True))
    assert flags[4].startswith("flat")
    assert flags[8] == ""
    assert flags[16].startswith("below chance")
    assert flags[32].startswith("no signal to measure")
    assert {"AUC", "AUC within problems", "tied pairs", "candidates", "correct", "model", "strategy"} <= set(table.columns)
    warning = fv.verifier_warning(table)
    assert warning is not None and warning.startswith("1 of 4 cells with a verifier have a flat verifier (AUC within 0.05 of 0.5)")
    assert fv.verifier_warning(fv.verifier_table(_quality([0.9]), cells)) is None


def test_the_flag_agrees_with_the_finding_on_what_is_flat():
    from ttscale.analysis.findings import _verifier_quality

    cells = pl.DataFrame({"cell_id": ["c0"], "model": "1b", "strategy": "best_of_n", "n": 4, "dataset": "d", "seed": 0})
    for auc in (0.3, 0.44, 0.46, 0.5, 0.54, 0.56, 0.9):
        [finding] = _verifier_quality(_quality([auc]))
        flat = fv.verifier_table(_quality([auc]), cells)["flag"][0].startswith("flat")
        assert flat == ("barely ranks candidates" in finding.text), auc


def test_an_applied_policy_is_shown_beside_the_gain_it_was_learned_from():
    applied = Finding("policy", "adaptive:weighted at n=16: 45.0% vs 42.0% for best_of_n:weighted ...", "frontiers",
                      "1b", "math500", "adaptive:weighted", 16)  # fmt: skip
    sections = dict((key, items) for key, _, items in fv.finding_sections([*FINDINGS, applied], CELLS, "sweep-1"))
    assert [item.kind for item in sections["compute_optimal"]] == ["compute_optimal", "policy"]


def test_the_gain_table_shows_short_names_percent_and_points_with_intervals():
    learned = "learned:/home/u/.ttscale/learn/model@0123456789ab"
    gain = pl.DataFrame({
        "model": "m", "dataset": "d", "base_config": "best_of_n", "method": "weighted", "n": 8, "verifier": ["self", learned],
        "config": ["best_of_n@self", "best_of_n@learned:model@01234567"], "n_problems": 24, "accuracy": [0.5, 0.25],
        "ci_low": [0.3, 0.1], "ci_high": [0.7, 0.45], "reference": [learned, "self"], "reference_accuracy": [0.25, 0.5],
        "gain": [0.25, -0.25], "gain_ci_low": [0.05, -0.45], "gain_ci_high": [0.45, -0.05],
    })  # fmt: skip
    table = fv.verifier_gain_table(gain)
    assert table["verifier"].to_list() == ["self", "learned:model@01234567"] and table["reference"].to_list() == ["learned:model@01234567", "self"]
    assert table["option"].to_list() == ["best_of_n:weighted"] * 2 and table["gain (points)"].to_list() == [25.0, -25.0]
    assert table["accuracy 95% CI (%)"].to_list() == ["[30.0, 70.0]", "[10.0, 45.0]"]
    assert table["gain 95% CI (points)"].to_list() == ["[+5.0, +45.0]", "[-45.0, -5.0]"]
    assert "verifier_gain" in fv.SECTION_OF and fv.SECTION_OF["verifier_gain"] == "verifier"
