"""What a report found, in sentences: the headline the demo prints and the dashboard opens on.

Each finding is one plain sentence with its 95% interval, and names the dashboard page (and the
option, budget and bin) that shows the numbers behind it, so a reader can go from the sentence
to the candidates. Definitions (all per model and dataset; `option` = configuration:method,
selectors only — `pass` is an oracle, never a strategy to use):

- `scaling`: the option whose accuracy rises most from its smallest to its largest budget n;
- `best`: the best option at each budget n (in-sample, Wilson interval over the problems);
- `verifier`: the best verifier-guided option against majority voting at equal n, the paired
  difference over the same problems with its t-interval (the largest at any n);
- `verifier_gain`: where options differ only in their verifier (`verifier_gain`), the largest
  lead of a group's most accurate verifier over the runner-up, paired with its t-interval;
- `policy`: each option of a strategy that applies a compute-optimal policy (`adaptive`) against
  the most accurate fixed option at the same n (chosen on these very problems, which favours the
  fixed side), the paired difference with its t-interval and the FLOPs ratio per problem;
- `compute_optimal`: the budget where choosing the option per difficulty bin gains most over
  the best single option, cross-fitted on two folds (`frontier.compute_optimal`);
- `small_vs_large`: where a smaller model with search matches or overtakes a larger one at
  matched FLOPs (`comparison.compare_models`);
- `verifier_quality`: each verifier's AUC (`verifier_quality`).

`headline` is one sentence: which option to use at the smallest and the largest budget, per
difficulty bin where the choice differs, and the gain of choosing per bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from ttscale.analysis.accuracy import t_interval, wilson_interval
from ttscale.analysis.frontier import ALL_BINS
from ttscale.analysis.verifier_gain import GROUP_KEYS as GAIN_GROUP
from ttscale.reward_model import short_names

MAJORITY = "majority"
FLAT_AUC_MARGIN = 0.05
"""A verifier whose AUC is within this of 0.5 barely ranks candidates: it is reported as flat."""


@dataclass(frozen=True)
class Finding:
    kind: str
    text: str
    """One sentence, plain text (no markup): safe in a terminal, Markdown and HTML once escaped."""
    page: str
    """The dashboard page that shows the numbers: `frontiers`, `compute_optimal` or `audit`."""
    model: str | None = None
    dataset: str | None = None
    option: str | None = None
    n: int | None = None
    bin: str | None = None


def pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def interval(low: float | None, high: float | None, *, points: bool = False) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    if points:
        return f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return f" [{100 * low:.1f}, {100 * high:.1f}]"


def option_accuracy(points: pl.DataFrame, bins: pl.DataFrame | None = None) -> pl.DataFrame:
    """model, dataset, [bin,] option, config, method, n, accuracy, ci_low, ci_high, n_problems:
    in-sample accuracy of every option at every real budget (seeds pooled per problem), with the
    Wilson interval over the problems."""
    keys = ["model", "dataset", "option", "config", "method", "n"]
    frame = points
    if bins is not None:
        frame = frame.join(bins.select("model", "dataset", "problem_id", pl.col("bin").cast(pl.String)), on=["model", "dataset", "problem_id"])
        keys = ["bin", *keys]
    low, high = wilson_interval(pl.col("accuracy"), pl.col("n_problems"))
    return (
        frame.group_by(keys)
        .agg(pl.col("correct").mean().alias("accuracy"), pl.len().cast(pl.Int64).alias("n_problems"))
        .with_columns(low.alias("ci_low"), high.alias("ci_high"))
        .sort(keys)
    )


def _best(acc: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """The most accurate option per `by` (ties: the option name, for a stable answer)."""
    return acc.sort([*by, "accuracy", "option"], descending=[False] * len(by) + [True, False]).group_by(by, maintain_order=True).first()


def _scaling(acc: pl.DataFrame, model: str, dataset: str) -> Finding | None:
    ends = acc.group_by("option").agg(
        pl.col("n").min().alias("n_lo"), pl.col("n").max().alias("n_hi"),
        pl.col("accuracy").sort_by("n").first().alias("lo"), pl.col("accuracy").sort_by("n").last().alias("hi"),
        pl.col("ci_low").sort_by("n").last().alias("hi_low"), pl.col("ci_high").sort_by("n").last().alias("hi_high"),
    ).filter(pl.col("n_hi") > pl.col("n_lo"))  # fmt: skip
    if ends.is_empty():
        return None
    r = ends.with_columns((pl.col("hi") - pl.col("lo")).alias("rise")).sort(["rise", "option"], descending=[True, False]).row(0, named=True)
    verb = "rises" if r["rise"] > 0 else "does not rise"
    text = (
        f"{r['option']} {verb} with the budget: {pct(r['lo'])} at n={r['n_lo']} to {pct(r['hi'])}"
        f"{interval(r['hi_low'], r['hi_high'])} at n={r['n_hi']}."
    )
    return Finding("scaling", text, "frontiers", model, dataset, r["option"], r["n_hi"])


def _best_per_budget(acc: pl.DataFrame, model: str, dataset: str) -> Finding | None:
    best = _best(acc, ["n"]).sort("n")
    if best.is_empty():
        return None
    parts = [f"n={r['n']}: {r['option']} {pct(r['accuracy'])}{interval(r['ci_low'], r['ci_high'])}" for r in best.iter_rows(named=True)]
    return Finding("best", "Best strategy at each budget — " + "; ".join(parts) + ".", "frontiers", model, dataset)


def _verifier_vs_majority(points: pl.DataFrame, model: str, dataset: str) -> Finding | None:
    """The largest paired gain of a verifier-guided option over majority voting at equal n.

    Majority voting is the most accurate `majority` option of a sampling strategy at that n
    (a real strategy, not a per-problem best); verifier-guided is any other option that used
    the verifier (naive or weighted selection, or a search)."""
    sampling = pl.col("config").str.starts_with("best_of_n") | pl.col("config").str.starts_with("majority")
    is_vote = (pl.col("method") == MAJORITY) & sampling
    votes = points.filter(is_vote)
    guided = points.filter(~is_vote & ((pl.col("method") != MAJORITY) | ~sampling))
    if guided.is_empty() or votes.is_empty():
        return None
    vote_option = _best(votes.group_by("n", "option").agg(pl.col("correct").mean().alias("accuracy")), ["n"]).select("n", "option")
    base = votes.join(vote_option, on=["n", "option"]).select("n", "problem_id", pl.col("correct").alias("_maj"))
    paired = guided.join(base, on=["n", "problem_id"])
    if paired.is_empty():
        return None
    d = pl.col("correct") - pl.col("_maj")
    diffs = paired.group_by("option", "n").agg(
        d.mean().alias("gain"), d.std(ddof=1).alias("sd"), pl.len().alias("k"),
        pl.col("correct").mean().alias("acc"), pl.col("_maj").mean().alias("maj"),
    )  # fmt: skip
    r = diffs.sort(["gain", "n", "option"], descending=[True, False, False]).row(0, named=True)
    low, high = t_interval(r["gain"], r["sd"], r["k"])
    if r["gain"] <= 0:
        text = f"No verifier-guided strategy beats majority voting at equal n (best: {r['option']} at n={r['n']}, {100 * r['gain']:+.1f} points)."
    else:
        sure = "" if not math.isnan(low) and low > 0 else " (the interval includes 0: not conclusive)"
        text = (
            f"{r['option']} beats majority voting at n={r['n']}: {pct(r['acc'])} vs {pct(r['maj'])}, "
            f"{100 * r['gain']:+.1f} points{interval(low, high, points=True)} on the same problems{sure}."
        )
    return Finding("verifier", text, "frontiers", model, dataset, r["option"], r["n"])


def _paired_gain(paired: pl.DataFrame) -> tuple[float, float, float]:
    """Mean of `correct - _other` over the problems with its 95% t-interval."""
    d = paired["correct"] - paired["_other"]
    gain = float(d.mean())
    return gain, *t_interval(gain, d.std(ddof=1) if d.len() > 1 else None, d.len())


def _policy_vs_fixed(points: pl.DataFrame, model: str, dataset: str) -> list[Finding]:
    applies = pl.col("config").str.starts_with("adaptive")
    fixed = points.filter(~applies & (pl.col("method") != "pass"))
    out = []
    for (option, n), mine in points.filter(applies & (pl.col("method") != "pass")).group_by("option", "n", maintain_order=True):
        rivals = fixed.filter(pl.col("n") == n)
        if rivals.is_empty():
            continue
        ranked = rivals.group_by("option").agg(pl.col("correct").mean().alias("accuracy"), pl.col("flops_per_problem").first())
        rival = ranked.sort(["accuracy", "option"], descending=[True, False]).row(0, named=True)
        paired = mine.join(rivals.filter(pl.col("option") == rival["option"]).select("problem_id", pl.col("correct").alias("_other")), on="problem_id")
        if paired.is_empty():
            continue
        gain, low, high = _paired_gain(paired)
        flops = mine["flops_per_problem"][0]
        ratio = f", at {flops / rival['flops_per_problem']:.2f}× its FLOPs per problem" if flops and rival["flops_per_problem"] else ""
        sure = "" if not math.isnan(low) and (low > 0 or high < 0) else " (the interval includes 0: no difference shown)"
        text = (
            f"{option} at n={n}: {pct(paired['correct'].mean())} vs {pct(paired['_other'].mean())} for {rival['option']}, the best fixed "
            f"option at n={n} on these problems: {100 * gain:+.1f} points{interval(low, high, points=True)}{ratio}{sure}."
        )
        out.append(Finding("policy", text, "frontiers", model, dataset, option, int(n)))
    return out


def _verifier_lead(gain: pl.DataFrame, model: str, dataset: str) -> Finding | None:
    """The largest lead of a group's best verifier over its runner-up (the first row of each
    group of `verifier_gain.verifier_gain`)."""
    leads = gain.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).group_by(GAIN_GROUP, maintain_order=True).first()
    if leads.is_empty():
        return None
    r = leads.sort(["gain", "n", "base_config", "method"], descending=[True, False, False, False]).row(0, named=True)
    shown = short_names([r["verifier"], r["reference"]])
    sure = "" if r["gain_ci_low"] is not None and r["gain_ci_low"] > 0 else " (the interval includes 0: no difference shown)"
    text = (
        f"{shown[r['verifier']]} is the most accurate verifier for {r['base_config']}:{r['method']} at n={r['n']}: "
        f"{pct(r['accuracy'])} vs {pct(r['reference_accuracy'])} for {shown[r['reference']]}, the runner-up, "
        f"{100 * r['gain']:+.1f} points{interval(r['gain_ci_low'], r['gain_ci_high'], points=True)} on the same "
        f"{r['n_problems']} problems{sure}."
    )
    return Finding("verifier_gain", text, "frontiers", model, dataset, f"{r['config']}:{r['method']}", int(r["n"]))


def _compute_optimal(frontier: pl.DataFrame, model: str, dataset: str) -> Finding | None:
    rows = frontier.filter((pl.col("bin") == ALL_BINS) & pl.col("gain").is_not_null())
    if rows.is_empty():
        return None
    r = rows.sort(["gain", "budget"], descending=[True, False]).row(0, named=True)
    single = r["single_chosen_on_0"] if r["single_chosen_on_0"] == r["single_chosen_on_1"] else f"{r['single_chosen_on_0']} / {r['single_chosen_on_1']}"
    if r["gain"] <= 0:
        text = f"Choosing the strategy per difficulty bin gains nothing over one strategy at any budget (best single at n={r['budget']}: {single})."
    else:
        sure = "" if r["gain_ci_low"] is not None and r["gain_ci_low"] > 0 else " (the interval includes 0: not conclusive)"
        text = (
            f"Choosing the strategy per difficulty bin gains {100 * r['gain']:+.1f} points"
            f"{interval(r['gain_ci_low'], r['gain_ci_high'], points=True)} at n={r['budget']}: "
            f"{pct(r['optimal_accuracy'])} vs {pct(r['single_accuracy'])} for {single} alone (two-fold, cross-fitted){sure}."
        )
    return Finding("compute_optimal", text, "compute_optimal", model, dataset, None, int(r["budget"]))


def _small_vs_large(comparison: pl.DataFrame) -> list[Finding]:
    out = []
    for r in comparison.iter_rows(named=True):
        if r["beats_reference_option"]:
            text = (
                f"{r['small_model']} with {r['beats_reference_option']} at n={r['beats_reference_n']} "
                f"({pct(r['beats_reference_accuracy'])}) beats {r['large_model']}'s {r['reference_option']} at n={r['reference_n']} "
                f"({pct(r['reference_accuracy'])}) using {r['flops_ratio']:.2f}× its FLOPs."
            )
        else:
            text = f"{r['small_model']} never beats {r['large_model']}'s cheapest point ({pct(r['reference_accuracy'])}) on {r['dataset']}."
        out.append(Finding("small_vs_large", text, "frontiers", r["small_model"], r["dataset"], r["beats_reference_option"], r["beats_reference_n"]))
    return out


def _verifier_quality(verifiers: pl.DataFrame) -> list[Finding]:
    if verifiers.is_empty():
        return []
    per = verifiers.group_by("verifier", "aggregation").agg(
        pl.col("auc").mean(), pl.col("auc_within").mean(), pl.col("tied_pairs").mean(), pl.len().alias("cells")
    ).sort("verifier", "aggregation")
    shown = short_names(per["verifier"].to_list())
    out = []
    for r in per.iter_rows(named=True):
        flat = " — it barely ranks candidates, so selection by score is close to arbitrary" if r["auc"] is not None and abs(r["auc"] - 0.5) < FLAT_AUC_MARGIN else ""
        auc = "–" if r["auc"] is None else f"{r['auc']:.2f}"
        text = f"Verifier {shown[r['verifier']]} ({r['aggregation']}) separates right from wrong candidates with AUC {auc} (0.5 = no signal){flat}."
        out.append(Finding("verifier_quality", text, "audit"))
    return out


def findings(report) -> list[Finding]:  # noqa: ANN001 (analysis.report.Report; imported lazily to avoid a cycle)
    """Every finding of `report`, per model and dataset, in reading order."""
    out: list[Finding] = []
    points = report.points
    if points is None or points.is_empty():
        return out
    acc_all = option_accuracy(points.filter(pl.col("method") != "pass"))
    for (model, dataset), acc in acc_all.group_by("model", "dataset", maintain_order=True):
        mine = points.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
        for found in (
            _scaling(acc, model, dataset),
            _verifier_vs_majority(mine, model, dataset),
            _verifier_lead(report.verifier_gain, model, dataset),
            _compute_optimal(report.frontier.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)), model, dataset),
            _best_per_budget(acc, model, dataset),
        ):
            if found is not None:
                out.append(found)
        out += _policy_vs_fixed(mine, model, dataset)
    out += _small_vs_large(report.comparison)
    out += _verifier_quality(report.verifiers)
    return out


def _tied_label(acc: pl.DataFrame, best: dict) -> str:
    """The best option's name, or only its configuration when every selection method of that
    configuration ties with it (at n=1 they all pick the one candidate: the method is moot)."""
    tied = acc.filter(pl.col("accuracy") == best["accuracy"])
    same_config = acc.filter(pl.col("config") == best["config"])
    return best["config"] if same_config.height > 1 and same_config.height == tied.filter(pl.col("config") == best["config"]).height else best["option"]


def headline(report) -> str:  # noqa: ANN001
    """One sentence: which option to use at the smallest and the largest budget (per difficulty
    bin where the best differs), for the first model and dataset; empty without results."""
    points = report.points
    if points is None or points.is_empty():
        return ""
    model, dataset = points.select("model", "dataset").sort("model", "dataset").row(0)
    mine = points.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
    acc = option_accuracy(mine)
    n_lo, n_hi = acc["n"].min(), acc["n"].max()
    lo = _best(acc.filter(pl.col("n") == n_lo), ["n"]).row(0, named=True)
    parts = [f"at n={n_lo} use {_tied_label(acc.filter(pl.col('n') == n_lo), lo)} ({pct(lo['accuracy'])}{interval(lo['ci_low'], lo['ci_high'])})"]
    gain = report.frontier.filter(
        (pl.col("model") == model) & (pl.col("dataset") == dataset) & (pl.col("bin") == ALL_BINS) & (pl.col("budget") == n_hi)
    )
    g = gain.row(0, named=True) if gain.height and gain["gain"][0] is not None else None
    if n_hi != n_lo:
        hi = _best(acc.filter(pl.col("n") == n_hi), ["n"]).row(0, named=True)
        by_bin = _best(option_accuracy(mine, report.problem_bins).filter(pl.col("n") == n_hi), ["bin"]).sort("bin")
        choices = by_bin.group_by("option", maintain_order=True).agg(pl.col("bin"))
        # Per-bin advice only where choosing per bin held up out of sample: the two-fold gain's
        # interval above 0. Otherwise one strategy is the honest advice.
        if choices.height > 1 and g is not None and g["gain_ci_low"] is not None and g["gain_ci_low"] > 0:
            per_bin = ", ".join(
                f"{r['option']} on difficulty bin{'s' if len(r['bin']) > 1 else ''} {', '.join(r['bin'])}" for r in choices.iter_rows(named=True)
            )
            parts.append(
                f"at n={n_hi} use {per_bin} (bin 1 easiest), which gains {100 * g['gain']:+.1f} points"
                f"{interval(g['gain_ci_low'], g['gain_ci_high'], points=True)} over one strategy"
            )
        else:
            parts.append(f"at n={n_hi} use {hi['option']} on every difficulty ({pct(hi['accuracy'])}{interval(hi['ci_low'], hi['ci_high'])})")
    text = f"{model} on {dataset}: " + "; ".join(parts)
    return text + "."


FINDINGS_SCHEMA = {"kind": pl.String, "text": pl.String, "page": pl.String}


def findings_frame(report) -> pl.DataFrame:  # noqa: ANN001
    """The headline (kind `headline`) and every finding, one row each, in reading order."""
    rows = [{"kind": "headline", "text": text, "page": "findings"}] if (text := headline(report)) else []
    rows += [{"kind": f.kind, "text": f.text, "page": f.page} for f in findings(report)]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA)
