"""Everything `ttscale report` shows, assembled from the store's frames, and its renderings.

`build_report` is pure (frames in, frames out). Renderers turn a `Report` into text: JSON
and CSV carry the long tables (every column, machine-readable); rich tables and Markdown
show compact views (accuracy pivoted by n, frontier points only). `plot_frontier` is the
one function here that writes a file — the chart the CLI's `--plot` and MLflow tracking
both use.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from ttscale.analysis.accuracy import cell_accuracy, seed_accuracy
from ttscale.analysis.agreement import AGREEMENT_COLUMNS
from ttscale.analysis.comparison import compare_models, model_frontiers
from ttscale.analysis.cells import describe_cells
from ttscale.analysis.costs import FlopsAxis
from ttscale.analysis.difficulty import BinKind, difficulty_bins
from ttscale.analysis.findings import FINDINGS_SCHEMA, findings_frame
from ttscale.analysis.frontier import ALL_BINS, compute_optimal, frontier_points
from ttscale.analysis.verdicts import Mode, problem_verdicts
from ttscale.analysis.verifier_gain import DEFINITION as GAIN_DEFINITION
from ttscale.analysis.verifier_gain import GAIN_SCHEMA, verifier_gain
from ttscale.analysis.verifier_quality import QUALITY_SCHEMA, verifier_quality
from ttscale.errors import SpecError
from ttscale.reward_model import short_names
from ttscale.spreadsheet import neutralise_formulas

if TYPE_CHECKING:
    from rich.table import Table

Format = Literal["table", "json", "csv", "markdown"]
FORMATS = ("table", "json", "csv", "markdown")
TABLES = ("findings", "accuracy", "bins", "frontier", "frontier_flops", "models", "comparison", "verifiers", "verifier_gain", "agreement")
VIEW_KEYS = {
    "findings": 1, "accuracy": 5, "bins": 2, "frontier": 4, "frontier_flops": 4, "models": 2, "comparison": 3, "verifiers": 1,
    "verifier_gain": 2, "agreement": 3,
}  # fmt: skip
"""How many leading columns of each display view name a row: a view split to fit a narrow
terminal repeats them in every part (`text_tables.fitted_tables`)."""


@dataclass(frozen=True)
class Report:
    """The analysis of a set of cells. Every frame is long (one fact per row)."""

    accuracy: pl.DataFrame
    """Per configuration across seeds (`accuracy.seed_accuracy`)."""
    cell_accuracy: pl.DataFrame
    bins: pl.DataFrame
    """Per bin: model, dataset, bin, n_problems, difficulty_min, difficulty_max."""
    problem_bins: pl.DataFrame
    frontier: pl.DataFrame
    """Compute-optimal vs best single option per generation budget n (`frontier.compute_optimal`)."""
    frontier_flops: pl.DataFrame
    """The same per FLOPs-per-problem budget."""
    models: pl.DataFrame
    """Every option's accuracy vs FLOPs per model, with the upper envelope (`comparison.model_frontiers`)."""
    comparison: pl.DataFrame
    settings: dict = field(default_factory=dict)
    points: pl.DataFrame | None = None
    """Per-problem correctness of every option at every real budget (`frontier.frontier_points`),
    for views this report does not tabulate (e.g. accuracy per bin); not rendered."""
    findings: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FINDINGS_SCHEMA))
    """The headline and each finding in one sentence (`findings.findings_frame`)."""
    verifiers: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUALITY_SCHEMA))
    """How well each cell's verifier separates right from wrong candidates (`verifier_quality`)."""
    verifier_gain: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=GAIN_SCHEMA))
    """Each verifier's accuracy and paired gain over the best other at equal n (`verifier_gain`)."""
    agreement: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={c: pl.String for c in AGREEMENT_COLUMNS}))
    """Published verdicts of imported cells against ttscale's (`agreement.agreement`); empty otherwise."""

    def table(self, name: str) -> pl.DataFrame:
        if name not in TABLES:
            raise SpecError(f"table: unknown {name!r}; allowed: {', '.join(TABLES)}")
        return getattr(self, name)


def build_report(
    cells: pl.DataFrame,
    candidates: pl.DataFrame,
    runs: pl.DataFrame | None = None,
    problems: pl.DataFrame | None = None,
    *,
    mode: Mode = "prefix",
    bins: BinKind = "oracle",
    n_bins: int = 5,
    n_draws: int = 32,
    seed: int = 0,
    fold_seed: int = 0,
    reference: list[str] | None = None,
    flops: FlopsAxis = "charged",
) -> Report:
    """Accuracy at n, difficulty bins, compute-optimal frontiers and model comparison.

    Frames as `store.read_cells`, `read_candidates`, `read_problem_runs` and `read_problems`
    return them; `runs` gives FLOPs (without it the FLOPs tables are empty) on the `flops` axis
    (`charged`, the reference's convention, or `computed`: `analysis.costs`), `problems`
    gives levels for `bins="level"`.
    """
    described = describe_cells(cells)
    n_cells = dict(zip(described["cell_id"].to_list(), described["n_cell"].to_list(), strict=True))
    verdicts = problem_verdicts(candidates, mode=mode, n_draws=n_draws, seed=seed, n_cells=n_cells)
    per_cell = cell_accuracy(verdicts)
    accuracy = seed_accuracy(per_cell, described)
    problem_bins = difficulty_bins(verdicts.problem_stats, described, problems, how=bins, n_bins=n_bins, reference=reference)
    bin_summary = (
        problem_bins.group_by("model", "dataset", "bin")
        .agg(
            pl.len().cast(pl.Int64).alias("n_problems"),
            pl.col("difficulty").min().alias("difficulty_min"),
            pl.col("difficulty").max().alias("difficulty_max"),
        )
        .sort("model", "dataset", "bin")
    )
    points = frontier_points(verdicts.per_problem, described, runs, flops)
    frontier = compute_optimal(points, problem_bins, fold_seed=fold_seed, budget="n")
    frontier_flops = compute_optimal(points, problem_bins, fold_seed=fold_seed, budget="flops")
    models = model_frontiers(points)
    comparison = compare_models(models)
    settings = {
        "mode": mode,
        "bins": bins,
        "n_bins": n_bins,
        "n_draws": verdicts.n_draws,
        "seed": seed,
        "fold_seed": fold_seed,
        "flops": flops,
        "pass_at_n": "unbiased estimate from all N samples (Chen et al. 2021), as the reference",
        "n_cells": described.height,
    }
    settings["verifiers"] = "AUC: P(a correct candidate outscores a wrong one), ties half; pooled over the cell and within problems"
    settings["verifier_gain"] = GAIN_DEFINITION
    built = Report(
        accuracy, per_cell, bin_summary, problem_bins, frontier, frontier_flops, models, comparison, settings, points,
        verifiers=verifier_quality(cells, candidates), verifier_gain=verifier_gain(points, described),
    )
    return replace(built, findings=findings_frame(built))


# ---- renderings ---------------------------------------------------------------------------


def _pick(tables: list[str] | None) -> list[str]:
    chosen = list(TABLES) if not tables else tables
    for name in chosen:
        if name not in TABLES:
            raise SpecError(f"table: unknown {name!r}; allowed: {', '.join(TABLES)}")
    return chosen


def to_json(report: Report, tables: list[str] | None = None) -> str:
    """{"settings": {...}, "tables": {name: [row, ...]}} with every column of the long tables."""
    out = {"settings": report.settings, "tables": {}}
    for name in _pick(tables):
        rows = report.table(name).to_dicts()
        out["tables"][name] = [{k: _json_value(v) for k, v in row.items()} for row in rows]
    return json.dumps(out, indent=2, allow_nan=False)


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_csv(report: Report, tables: list[str] | None = None) -> str:
    """CSV of one table; for several, each preceded by a `# name` line and a blank line between."""
    names = _pick(tables)
    if len(names) == 1:
        return neutralise_formulas(report.table(names[0])).write_csv()
    parts = [f"# {name}\n{neutralise_formulas(report.table(name)).write_csv()}" for name in names]
    return "\n".join(parts)


def _fmt_acc(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.1f}"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{100 * low:.1f},{100 * high:.1f}]"
    return text


def _fmt_interval(value: float | None, low: float | None, high: float | None, sign: str = "") -> str:
    """A percentage with its 95% interval in whole points, compact enough for a terminal
    column: `43.3 [27,61]` (`sign="+"`: `+3.3 [-5,12]`)."""
    if value is None or math.isnan(value):
        return "–"
    text = f"{100 * value:{sign}.1f}"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{100 * low:.0f},{100 * high:.0f}]"
    return text


def _fmt_ratio(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


def _fmt_flops(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3g}"


def display_views(report: Report, tables: list[str] | None = None) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Compact, human-readable views (headers, rows of strings) of the chosen tables.

    accuracy: one row per (model, dataset, config, N, method), one column per n, in percent
    with the 95% interval; frontier tables: compute-optimal vs best single, each with its 95%
    interval in whole points (`43.3 [27,61]`); models: only the points on each model's envelope.
    """
    views: dict[str, tuple[list[str], list[list[str]]]] = {}
    for name in _pick(tables):
        frame = report.table(name)
        if name == "findings":
            views[name] = (["finding", "what the results show"], [[r["kind"], r["text"]] for r in frame.iter_rows(named=True)])
        elif name == "accuracy":
            views[name] = _accuracy_view(frame)
        elif name == "bins":
            views[name] = (
                ["model", "dataset", "bin", "problems", "difficulty"],
                [
                    [r["model"], r["dataset"], str(r["bin"]), str(r["n_problems"]),
                     f"{r['difficulty_min']:.3g}–{r['difficulty_max']:.3g}"]
                    for r in frame.iter_rows(named=True)
                ],
            )  # fmt: skip
        elif name in ("frontier", "frontier_flops"):
            budget = "n" if name == "frontier" else "FLOPs/problem"
            views[name] = (
                ["model", "dataset", "bin", budget, "problems", "optimal", "single", "gain", "optimal FLOPs",
                 "chosen (fold 0 | fold 1)", "single (fold 0 | fold 1)"],
                [
                    [r["model"], r["dataset"], r["bin"],
                     str(r["budget"]) if name == "frontier" else _fmt_flops(r["budget"]),
                     str(r["n_problems"]),
                     _fmt_interval(r["optimal_accuracy"], r["optimal_ci_low"], r["optimal_ci_high"]),
                     _fmt_interval(r["single_accuracy"], r["single_ci_low"], r["single_ci_high"]),
                     _fmt_interval(r["gain"], r["gain_ci_low"], r["gain_ci_high"], sign="+"),
                     _fmt_flops(r["optimal_flops"]),
                     _pair(r["optimal_chosen_on_0"], r["optimal_chosen_on_1"]),
                     _pair(r["single_chosen_on_0"], r["single_chosen_on_1"])]
                    for r in frame.iter_rows(named=True)
                ],
            )  # fmt: skip
        elif name == "models":
            views[name] = (
                ["model", "dataset", "FLOPs/problem", "accuracy", "option", "n"],
                [
                    [r["model"], r["dataset"], _fmt_flops(r["flops_per_problem"]), _fmt_acc(r["accuracy"]),
                     r["option"], str(r["n"])]
                    for r in frame.filter(pl.col("on_frontier")).iter_rows(named=True)
                ],
            )  # fmt: skip
        elif name == "verifiers":
            shown = short_names(frame["verifier"].to_list())
            views[name] = (
                ["cell", "verifier", "candidates", "correct", "AUC", "AUC in problem", "tied pairs"],
                [
                    [r["cell_id"], f"{shown[r['verifier']]}/{r['aggregation']}", str(r["n_candidates"]), str(r["n_correct"]),
                     _fmt_ratio(r["auc"]), _fmt_ratio(r["auc_within"]), _fmt_ratio(r["tied_pairs"])]
                    for r in frame.iter_rows(named=True)
                ],
            )  # fmt: skip
        elif name == "verifier_gain":
            views[name] = _verifier_gain_view(frame)
        elif name == "agreement":
            views[name] = (
                ["cell", "method", "n", "problems", "published", "ttscale", "differ"],
                [
                    [r["cell_id"], r["method"], str(r["n"]), str(r["n_problems"]), _fmt_acc(r["published_accuracy"]),
                     _fmt_acc(r["ttscale_accuracy"]), str(r["n_differ"])]
                    for r in frame.iter_rows(named=True)
                ],
            )  # fmt: skip
        else:
            views[name] = _comparison_view(frame)
    return views


def _pair(a: str | None, b: str | None) -> str:
    if a is None and b is None:
        return "(per bin)"
    return a if a == b else f"{a} | {b}"


def _accuracy_view(frame: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    ns = sorted(set(frame["n"].to_list()))
    keys = ["model", "dataset", "config", "n_cell", "method"]
    rows = []
    for key, group in frame.group_by(keys, maintain_order=True):
        by_n = {r["n"]: r for r in group.iter_rows(named=True)}
        cells = [_fmt_acc(by_n[n]["accuracy"], by_n[n]["ci_low"], by_n[n]["ci_high"]) if n in by_n else "" for n in ns]
        model, dataset, config, n_cell, method = key
        rows.append([str(model), str(dataset), str(config), str(n_cell), str(method), *cells])
    return ["model", "dataset", "config", "N", "method", *[f"n={n}" for n in ns]], rows


def _verifier_gain_view(frame: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """One row per verifier of each option and n, best first: two key columns and two numbers,
    so that it fits 80 columns (the reference is the next row for the best, the best for the
    rest; JSON and CSV name it). With several models or datasets, the first row of each names
    them on a line above its option."""
    several = frame.select("model", "dataset").unique().height > 1
    shown = short_names(frame["verifier"].to_list())
    rows, about = [], None
    for r in frame.iter_rows(named=True):
        option = f"{r['base_config']}:{r['method']} n={r['n']}"
        first = several and about != (r["model"], r["dataset"])
        about = (r["model"], r["dataset"])
        rows.append([
            f"{r['model']} on {r['dataset']}:\n{option}" if first else option,
            shown[r["verifier"]],
            _fmt_interval(r["accuracy"], r["ci_low"], r["ci_high"]),
            _fmt_interval(r["gain"], r["gain_ci_low"], r["gain_ci_high"], sign="+"),
        ])  # fmt: skip
    return ["option", "verifier", "accuracy", "gain vs best other"], rows


def view_note(report: Report, name: str) -> str | None:
    """The line under a view that says what its numbers are, where the view needs one."""
    if name != "verifier_gain" or report.verifier_gain.is_empty():
        return None
    counts = sorted(set(report.verifier_gain["n_problems"].to_list()))
    problems = f"the same {counts[0]} problems" if len(counts) == 1 else f"the problems both ran ({counts[0]}-{counts[-1]})"
    return (
        f"accuracy: % of problems right (seeds pooled), 95% Wilson interval [low,high]; gain: points over the most "
        f"accurate other verifier of the option at that n (for its first row, the runner-up below), paired on "
        f"{problems}, 95% t-interval"
    )


def _comparison_view(frame: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["dataset", "small", "large", "large at its cheapest", "small beats it with", "FLOPs ×",
               "small overtakes at FLOPs", "small | large there", "ahead until"]  # fmt: skip
    rows = []
    for r in frame.iter_rows(named=True):
        beats = (
            f"{r['beats_reference_option']} n={r['beats_reference_n']} ({_fmt_acc(r['beats_reference_accuracy'])})"
            if r["beats_reference_option"]
            else "never"
        )
        rows.append([
            r["dataset"], r["small_model"], r["large_model"],
            f"{r['reference_option']} n={r['reference_n']} ({_fmt_acc(r['reference_accuracy'])})",
            beats,
            "–" if r["flops_ratio"] is None else f"{r['flops_ratio']:.2f}",
            _fmt_flops(r["overtakes_at_flops"]) if r["overtakes_at_flops"] is not None else "never",
            f"{_fmt_acc(r['overtakes_accuracy'])} | {_fmt_acc(r['large_accuracy_there'])}" if r["overtakes_at_flops"] else "–",
            _fmt_flops(r["ahead_until_flops"]),
        ])  # fmt: skip
    return headers, rows


def to_markdown(report: Report, tables: list[str] | None = None) -> str:
    """A `## name` section with a GitHub-flavoured Markdown table per chosen table."""
    out = []
    for name, (headers, rows) in display_views(report, tables).items():
        out.append(f"## {name}\n")
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---" for _ in headers) + "|")
        for row in rows:
            out.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |")
        if note := view_note(report, name):
            out.append(f"\n{note}")
        out.append("")
    return "\n".join(out)


def rich_tables(report: Report, tables: list[str] | None = None, width: int = 80) -> list[Table]:
    """rich Tables of the display views for a terminal `width` columns wide: a view wider than
    that is split into parts that repeat its key columns (`VIEW_KEYS`)."""
    from ttscale.analysis.text_tables import fitted_tables

    out = []
    for name, (headers, rows) in display_views(report, tables).items():
        out += fitted_tables(name, headers, rows, width=width, keys=VIEW_KEYS[name], note=view_note(report, name))
    return out


def render(report: Report, fmt: Format, tables: list[str] | None = None, width: int = 80) -> str:
    """The report as text in `fmt` (json, csv, markdown); `table` renders rich tables to plain
    text `width` columns wide (the caller passes its output's width: 80 unless a terminal)."""
    if fmt == "json":
        return to_json(report, tables)
    if fmt == "csv":
        return to_csv(report, tables)
    if fmt == "markdown":
        return to_markdown(report, tables)
    if fmt == "table":
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None, soft_wrap=False)
        for table in rich_tables(report, tables, width):
            console.print(table)
        return buffer.getvalue()
    raise SpecError(f"format: unknown {fmt!r}; allowed: {', '.join(FORMATS)}")


# ---- the chart ------------------------------------------------------------------------------


def plot_frontier(
    models: pl.DataFrame,
    path: str | Path,
    *,
    frontier: pl.DataFrame | None = None,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Write the frontier chart as a PNG and return its path.

    Right panel: accuracy vs FLOPs per problem (log scale), every option × n of every model
    as a faint point and each model's upper envelope as a step line. Left panel (when
    `frontier`, the n-budget `compute_optimal` table, is given): the compute-optimal and the
    best-single accuracy over all bins vs generation budget n, per model. Uses matplotlib's
    Agg canvas directly: no pyplot state, no display needed, safe in worker threads.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 2 if frontier is not None and frontier.height else 1
    fig = Figure(figsize=(6.5 * panels, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    colors = [f"C{i}" for i in range(10)]
    model_names = sorted(set(models["model"].to_list()) | (set(frontier["model"].to_list()) if panels == 2 else set()))
    color = {m: colors[i % len(colors)] for i, m in enumerate(model_names)}

    if panels == 2:
        ax = axes[0]
        overall = frontier.filter(pl.col("bin") == ALL_BINS)
        for (model, dataset), group in overall.group_by("model", "dataset", maintain_order=True):
            group = group.sort("budget")
            label = model if overall["dataset"].n_unique() == 1 else f"{model} ({dataset})"
            ax.plot(group["budget"], group["optimal_accuracy"], "-o", color=color[model], label=f"{label} compute-optimal")
            ax.plot(group["budget"], group["single_accuracy"], "--", color=color[model], alpha=0.7, label=f"{label} best single")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("generation budget n")
        ax.set_ylabel("accuracy")
        ax.set_title("compute-optimal vs best single (two-fold)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    ax = axes[-1]
    for (model, dataset), group in models.group_by("model", "dataset", maintain_order=True):
        group = group.sort("flops_per_problem")
        label = model if models["dataset"].n_unique() == 1 else f"{model} ({dataset})"
        ax.scatter(group["flops_per_problem"], group["accuracy"], s=12, alpha=0.25, color=color[model])
        env = group.filter(pl.col("on_frontier"))
        xs = env["flops_per_problem"].to_list() + [group["flops_per_problem"].max()]
        ys = env["accuracy"].to_list() + [env["accuracy"].max()]
        ax.step(xs, ys, where="post", color=color[model], label=label, linewidth=2)
    if models.height:
        ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs per problem (policy + verifier)")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy vs compute, upper envelope per model")
    ax.grid(True, alpha=0.3)
    if models.height:
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=dpi, format="png")
    return out
