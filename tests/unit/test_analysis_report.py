"""The assembled report on a synthetic sweep, its renderings and the frontier chart."""

from __future__ import annotations

import csv
import io
import json

import polars as pl
import pytest

from ttscale.analysis.report import TABLES, VIEW_KEYS, build_report, display_views, plot_frontier, render, rich_tables
from ttscale.analysis.text_tables import fitted_tables
from benchmarks.synthetic_sweep import synthetic_sweep
from ttscale.errors import SpecError


@pytest.fixture(scope="module")
def sweep():
    return synthetic_sweep(n_problems=40, n=8, seeds=(0, 1), rng_seed=3)


@pytest.fixture(scope="module")
def report(sweep):
    return build_report(sweep.cells, sweep.candidates, sweep.runs, sweep.problems)


def test_synthetic_sweep_has_the_store_columns_and_classes_by_first_occurrence(sweep):
    assert sweep.candidates.height == 2 * 3 * 2 * 40 * 8
    assert {"cell_id", "problem_id", "idx", "answer", "answer_class", "correct", "score", "policy_flops"} <= set(
        sweep.candidates.columns
    )
    first = sweep.candidates.filter(pl.col("answer_class") >= 0).group_by("cell_id", "problem_id", "answer_class").agg(
        pl.col("idx").min()
    )
    ordered = first.sort("cell_id", "problem_id", "idx").group_by("cell_id", "problem_id", maintain_order=True).agg(
        pl.col("answer_class")
    )
    assert all(classes == list(range(len(classes))) for classes in ordered["answer_class"].to_list())
    assert sweep.candidates.filter((pl.col("answer_class") < 0) & pl.col("correct")).height == 0


def test_report_tables_cover_every_model_config_and_budget(report):
    acc = report.accuracy
    assert set(acc["model"].to_list()) == {"small-1b", "large-8b"}
    assert set(acc["config"].to_list()) == {"best_of_n", "dvts", "beam_search"}
    assert sorted(set(acc["n"].to_list())) == [1, 2, 4, 8]
    assert acc["n_seeds"].unique().to_list() == [2]
    # pass@n never falls as n grows, per configuration
    for _, group in acc.filter(pl.col("method") == "pass").group_by("model", "config"):
        values = group.sort("n")["accuracy"].to_list()
        assert values == sorted(values)
    # the stronger synthetic model is more accurate at n=1
    at1 = acc.filter((pl.col("n") == 1) & (pl.col("method") == "majority")).group_by("model").agg(pl.col("accuracy").mean())
    by = dict(at1.iter_rows())
    assert by["large-8b"] > by["small-1b"]
    assert set(report.bins["bin"].to_list()) == {1, 2, 3, 4, 5}
    assert report.bins["n_problems"].sum() == 2 * 40
    assert set(report.frontier["bin"].to_list()) == {"1", "2", "3", "4", "5", "all"}
    # beam_search only competes at its own N
    chosen = report.frontier.filter(pl.col("budget") < 8)
    labels = chosen["single_chosen_on_0"].to_list() + chosen["optimal_chosen_on_0"].drop_nulls().to_list()
    assert not any(label.startswith("beam_search") for label in labels)
    assert report.models.filter(pl.col("on_frontier")).height >= 2
    assert report.comparison.height == 1
    assert report.comparison["small_model"][0] == "small-1b"


def test_json_carries_every_row_and_column(report):
    data = json.loads(render(report, "json"))
    assert set(data["tables"]) == set(TABLES)
    assert data["settings"]["bins"] == "oracle"
    for name in TABLES:
        assert len(data["tables"][name]) == report.table(name).height
    row = data["tables"]["accuracy"][0]
    assert set(row) == set(report.accuracy.columns)
    assert row["accuracy"] == report.accuracy.row(0, named=True)["accuracy"]


def test_csv_sections_and_single_table(report):
    one = render(report, "csv", ["frontier"])
    rows = list(csv.DictReader(io.StringIO(one)))
    assert len(rows) == report.frontier.height
    assert float(rows[0]["optimal_accuracy"]) == pytest.approx(report.frontier["optimal_accuracy"][0])
    both = render(report, "csv", ["bins", "comparison"])
    assert both.startswith("# bins\nmodel,dataset,bin,")
    assert "\n# comparison\ndataset,small_model,large_model," in both


def test_markdown_and_table_views(report):
    md = render(report, "markdown", ["accuracy", "models"])
    assert md.startswith("## accuracy\n")
    assert "| model | dataset | config | N | method | n=1 | n=2 | n=4 | n=8 |" in md
    majority = report.accuracy.filter(
        (pl.col("model") == "large-8b") & (pl.col("config") == "dvts") & (pl.col("method") == "majority") & (pl.col("n") == 8)
    ).row(0, named=True)
    assert f"{100 * majority['accuracy']:.1f} [{100 * majority['ci_low']:.1f},{100 * majority['ci_high']:.1f}]" in md
    assert md.count("\n| large-8b |") >= 4 + report.models.filter(
        (pl.col("model") == "large-8b") & pl.col("on_frontier")
    ).height
    text = render(report, "table", ["comparison"])
    assert "comparison" in text and "small-1b" in text
    with pytest.raises(SpecError, match="format: unknown"):
        render(report, "xml")
    with pytest.raises(SpecError, match="table: unknown"):
        render(report, "json", ["nope"])


def test_plot_writes_a_png_with_both_panels(report, tmp_path):
    path = plot_frontier(report.models, tmp_path / "f.png", frontier=report.frontier, title="t")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    single = plot_frontier(report.models, tmp_path / "g.png")
    assert width > int.from_bytes(single.read_bytes()[16:20], "big")  # two panels are wider than one


def test_level_and_predicted_bins_and_bootstrap_mode(sweep):
    level = build_report(sweep.cells, sweep.candidates, sweep.runs, sweep.problems, bins="level")
    levels = sweep.problems.group_by("level").len()
    assert dict(level.bins.filter(pl.col("model") == "small-1b").select("bin", "n_problems").iter_rows()) == dict(
        levels.iter_rows()
    )
    boot = build_report(sweep.cells, sweep.candidates, sweep.runs, bins="predicted", mode="bootstrap", n_draws=4, seed=1)
    assert boot.settings["mode"] == "bootstrap" and boot.settings["n_draws"] == 4
    one_seed = boot.cell_accuracy.filter(pl.col("method") == "naive")
    assert one_seed["n_draws"].unique().to_list() == [4]
    assert one_seed.filter(pl.col("n") < 8)["ci_low"].null_count() == 0


def test_report_keeps_the_points_it_was_built_from(report):
    assert report.points is not None
    overall = report.points.group_by("model", "option", "n").agg(pl.col("correct").mean())
    models = report.models.select("model", "option", "n", "accuracy")
    joined = models.join(overall, on=["model", "option", "n"])
    assert joined.height == models.height
    assert (joined["accuracy"] - joined["correct"]).abs().max() < 1e-12


def _header_words(report, name):
    headers, _ = display_views(report, [name])[name]
    return {word for header in headers for word in header.split()}


@pytest.mark.parametrize("name", TABLES)
def test_table_rendering_fits_80_columns_without_squeezing_a_header(report, name):
    text = render(report, "table", [name], width=80)
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    assert not any("…" in line for line in lines)  # nothing cut short
    tokens = set(text.split())
    assert _header_words(report, name) <= tokens  # every header word whole (a header may wrap at its spaces)


def test_wide_views_split_into_parts_that_repeat_their_key_columns(report):
    narrow = rich_tables(report, ["frontier"], width=80)
    wide = rich_tables(report, ["frontier"], width=250)
    assert len(wide) == 1 and len(narrow) > 1
    keys = [str(c.header) for c in wide[0].columns[:VIEW_KEYS["frontier"]]]
    assert keys == ["model", "dataset", "bin", "n"]
    assert all([str(c.header) for c in part.columns[: len(keys)]] == keys for part in narrow)
    rest = [str(c.header) for part in narrow for c in part.columns[len(keys):]]
    assert rest == [str(c.header) for c in wide[0].columns[len(keys):]]  # every other column once, in order
    assert [str(t.title) for t in narrow] == [f"frontier (part {i}/{len(narrow)})" for i in range(1, len(narrow) + 1)]


def test_frontier_view_shows_the_intervals_compactly(report):
    headers, rows = display_views(report, ["frontier"])["frontier"]
    row = report.frontier.filter((pl.col("model") == "small-1b") & (pl.col("bin") == "all") & (pl.col("budget") == 8)).row(0, named=True)
    shown = dict(zip(headers, next(r for r in rows if r[:4] == ["small-1b", row["dataset"], "all", "8"]), strict=True))
    assert shown["optimal"] == f"{100 * row['optimal_accuracy']:.1f} [{100 * row['optimal_ci_low']:.0f},{100 * row['optimal_ci_high']:.0f}]"
    assert shown["single"] == f"{100 * row['single_accuracy']:.1f} [{100 * row['single_ci_low']:.0f},{100 * row['single_ci_high']:.0f}]"
    assert shown["gain"] == f"{100 * row['gain']:+.1f} [{100 * row['gain_ci_low']:.0f},{100 * row['gain_ci_high']:.0f}]"


def test_fitted_tables_wrap_only_at_spaces_when_one_column_cannot_fit():
    from rich.console import Console

    long = "best_of_n:majority@1 | beam_search:weighted@16 | dvts:naive@4 | self_refine:naive@2"
    tables = fitted_tables("t", ["cell", "chosen options"], [["c1", long]], width=40, keys=1)
    console = Console(file=io.StringIO(), width=40, color_system=None)
    console.print(tables[0])
    lines = console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 40
    assert set(long.split()) <= set(console.file.getvalue().split())  # wrapped between words, never inside one
