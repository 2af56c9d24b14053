"""What the findings page shows, from `ttscale.analysis.findings` and `Report.verifiers`: pure
functions, as in `views`.

Each finding becomes plain text (names from the store are never rendered as Markdown: the page
shows them with `st.text`) with links to the page that shows its numbers and, where it names an
option and a budget, to the problem explorer on the cell whose candidates are behind it. Verifier
quality becomes a table with a flag where a verifier is flat, and each verifier's gain over the
best other at equal budgets a table with its intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import views

from ttscale.analysis.findings import FLAT_AUC_MARGIN, Finding

PAGES = {
    "findings": "pages/findings.py",
    "sweeps": "pages/sweeps.py",
    "frontiers": "pages/frontiers.py",
    "compute_optimal": "pages/compute_optimal.py",
    "problems": "pages/problems.py",
    "audit": "pages/audit.py",
}
"""A page's name (as `Finding.page` names it) → its script, for `st.page_link`."""

PAGE_LABELS = {
    "frontiers": "Frontiers: accuracy vs budget",
    "compute_optimal": "Compute-optimal table",
    "audit": "Audit: verifier quality per cell",
    "problems": "Problem explorer",
    "sweeps": "All sweeps and their cells",
}
PAGE_ICONS = {
    "frontiers": ":material/show_chart:",
    "compute_optimal": ":material/target:",
    "audit": ":material/fact_check:",
    "problems": ":material/account_tree:",
    "sweeps": ":material/list_alt:",
}

SECTIONS = (
    ("best", "Best strategy per budget"),
    ("compute_optimal", "Gain of choosing the strategy per difficulty"),
    ("small_vs_large", "Small model with search vs large model"),
    ("verifier", "Verifier"),
    ("scaling", "Scaling with the budget"),
    ("other", "Other findings"),
)
"""Sections of the findings page in reading order: (key, title)."""
SECTION_OF = {"verifier_quality": "verifier", "verifier_gain": "verifier", "policy": "compute_optimal"}
"""A finding kind shown in another kind's section (an applied policy beside the gain it was
learned from); kinds without a section go to `other`."""
EMPTY = {
    "best": "No budget with verdicts yet.",
    "compute_optimal": "No budget where choosing per difficulty bin could be compared with one strategy.",
    "small_vs_large": (
        "This comparison needs at least two models on one dataset: add a second model to the sweep's `models` "
        "(e.g. a 1B and an 8B policy) and run it."
    ),
    "verifier": "No cell here uses a verifier.",
    "scaling": "Each option ran at one budget only: nothing to compare across budgets.",
}
"""What a section says when it holds no finding (our words only: shown as Markdown)."""

FLAT_AUC = FLAT_AUC_MARGIN
"""A verifier whose AUC is within this of 0.5 is flat (`analysis.findings`' threshold)."""

VERIFIER_CAPTION = (
    "AUC: the chance that a random correct candidate of the cell scores above a random wrong one (ties count half); "
    "0.5 = no signal, 1 = perfect. AUC within problems: the same among one problem's candidates, averaged over the "
    "problems that have both right and wrong ones — what selection by score sees. Tied pairs: the share of a problem's "
    "candidate pairs with equal scores (1 = the verifier cannot rank anything). Flat: AUC within "
    f"{FLAT_AUC} of 0.5 — weighted selection is then close to majority voting and naive selection close to a random pick. "
    "Below chance: wrong candidates tend to score higher than right ones. No signal to measure: the cell's candidates "
    "are all right or all wrong."
)

GAIN_CAPTION = (
    "Options that differ only in their verifier, at equal n: accuracy is the share of problems answered right (seeds "
    "pooled per problem) on the problems both verifiers ran, with its 95% Wilson interval; the reference is the most "
    "accurate other verifier of that option and n (for the most accurate one, the runner-up), chosen on these same "
    "problems, which favours it; gain is accuracy minus the reference's, in points, with the 95% paired t-interval over "
    "the problems. Best-of-N is compared at n > 1 with naive and weighted selection only (its majority vote and a single "
    "sample read no score); searches that the verifier steers, with every selection method."
)
GAIN_EMPTY = "No option here ran under two or more verifiers on the same problems: there is no verifier to compare at equal budgets."


@dataclass(frozen=True)
class Link:
    """A link to a page of the dashboard with its query parameters (the page reads them)."""

    page: str
    """The page's name (`PAGES`)."""
    label: str
    """Our own words only: Streamlit renders a link's label as Markdown, so no text from the store."""
    query: dict[str, str]

    @property
    def script(self) -> str:
        return PAGES[self.page]

    @property
    def icon(self) -> str | None:
        return PAGE_ICONS.get(self.page)


@dataclass(frozen=True)
class FindingView:
    kind: str
    text: str
    """Plain text (names from the store included): to be shown with `st.text`, never as Markdown."""
    links: tuple[Link, ...]


def finding_sentence(finding: Finding, *, about: bool = True) -> str:
    """The finding's sentence, prefixed with the model and dataset it is about (unless not
    `about`: when every finding is about the same ones, the headline has named them)."""
    if not about:
        return finding.text
    if finding.kind == "small_vs_large" and finding.dataset:
        return f"{finding.dataset}: {finding.text}"
    if finding.model and finding.dataset:
        return f"{finding.model} on {finding.dataset}: {finding.text}"
    return finding.text


def finding_cell(cells: pl.DataFrame, model: str, dataset: str, option: str, n: int) -> str | None:
    """The cell whose candidates stand behind `option` at budget n: a generating cell of
    `cells` (`analysis.describe_cells` of the report's cells) with the option's configuration
    and the smallest N >= n (its first n candidates are the option at n), lowest seed first."""
    config = option.rpartition(":")[0] or option
    rows = cells.filter(
        (pl.col("model") == model) & (pl.col("dataset") == dataset) & (pl.col("config") == config) & (pl.col("n_cell") >= n)
    ).sort("n_cell", "seed", "cell_id")
    return rows["cell_id"][0] if rows.height else None


def finding_links(finding: Finding, cells: pl.DataFrame, scope: str) -> tuple[Link, ...]:
    """The page that shows the finding's numbers and, where the finding names an option and a
    budget, the problem explorer on the cell whose candidates are behind it, at that budget,
    highlighting the option's selection method."""
    query = {"sweep": scope}
    out = []
    if finding.page in PAGES:
        out.append(Link(finding.page, PAGE_LABELS.get(finding.page, finding.page), query))
    if finding.option and finding.n and finding.model and finding.dataset:
        cell = finding_cell(cells, finding.model, finding.dataset, finding.option, finding.n)
        if cell is not None:
            method = finding.option.rpartition(":")[2]
            explorer = {**query, "cell": cell, "n": str(finding.n), **({"method": method} if method else {})}
            out.append(Link("problems", f"Candidates at n={finding.n} (problem explorer)", explorer))
    return tuple(out)


def finding_sections(findings: list[Finding], cells: pl.DataFrame, scope: str) -> list[tuple[str, str, list[FindingView]]]:
    """(key, title, findings) for every section of `SECTIONS`, in reading order (empty ones
    included, so a page can say what is missing; `other` only when it holds something).
    Sentences name their model and dataset only when the findings are about several."""
    known = {key for key, _ in SECTIONS}
    grouped: dict[str, list[FindingView]] = {key: [] for key, _ in SECTIONS}
    about = len({(f.model, f.dataset) for f in findings if f.model or f.dataset}) > 1
    for f in findings:
        key = SECTION_OF.get(f.kind, f.kind)
        view = FindingView(f.kind, finding_sentence(f, about=about), finding_links(f, cells, scope))
        grouped[key if key in known else "other"].append(view)
    return [(key, title, grouped[key]) for key, title in SECTIONS if key != "other" or grouped["other"]]


def headline_links(scope: str) -> tuple[Link, ...]:
    query = {"sweep": scope}
    return (Link("frontiers", PAGE_LABELS["frontiers"], query), Link("compute_optimal", PAGE_LABELS["compute_optimal"], query))


def sweep_links(scope: str) -> tuple[Link, ...]:
    """Below the findings: the list of every sweep, and the audit of this one."""
    return (Link("sweeps", PAGE_LABELS["sweeps"], {}), Link("audit", "Audit: spec, timings, export", {"sweep": scope}))


def verifier_flag() -> pl.Expr:
    """`flat (AUC ≈ 0.5)`, `below chance` or empty, from a frame's `auc`; `no signal to
    measure` where the cell's candidates are all right or all wrong (`VERIFIER_CAPTION` says
    what each means)."""
    auc = pl.col("auc")
    return (
        pl.when(auc.is_null())
        .then(pl.lit("no signal to measure"))
        .when((auc - 0.5).abs() < FLAT_AUC)
        .then(pl.lit("flat (AUC ≈ 0.5)"))
        .when(auc < 0.5)
        .then(pl.lit("below chance"))
        .otherwise(pl.lit(""))
    )


def verifier_table(verifiers: pl.DataFrame, cells: pl.DataFrame) -> pl.DataFrame:
    """`Report.verifiers` as the pages show it: per cell with a verifier, what the cell ran,
    the verifier's AUC pooled and within problems, tied pairs, and a flag (`verifier_flag`).
    `cells` as `store.read_cells` (model, strategy, n, dataset, seed)."""
    about = cells.select("cell_id", "model", "strategy", "n", "dataset", "seed")
    return (
        verifiers.join(about, on="cell_id", how="left")
        .with_columns(verifier_flag().alias("flag"))
        .select(
            "model", "strategy", "n", views.short_verifier(), "aggregation", pl.col("auc").alias("AUC"),
            pl.col("auc_within").alias("AUC within problems"), pl.col("tied_pairs").alias("tied pairs"), "flag",
            pl.col("n_candidates").alias("candidates"), pl.col("n_correct").alias("correct"),
            pl.col("n_problems_mixed").alias("problems with both"), "dataset", "seed", "cell_id",
        )  # fmt: skip
        .sort("model", "strategy", "n", "seed")
    )


def verifier_warning(table: pl.DataFrame) -> str | None:
    """One sentence when some cell's verifier is flat (`verifier_table` rows), else None."""
    flat = table.filter(pl.col("flag").str.starts_with("flat")).height
    if not flat:
        return None
    return (
        f"{flat} of {table.height} cells with a verifier have a flat verifier (AUC within {FLAT_AUC} of 0.5): selection "
        "by its scores is close to arbitrary there, so verifier-guided results say little about the verifier."
    )


def verifier_gain_table(gain: pl.DataFrame) -> pl.DataFrame:
    """`Report.verifier_gain` as the findings page shows it: per option and budget, each verifier
    (display name) with its accuracy and the gain over its reference, each with its 95% interval
    (percent / points), best first."""
    frame = gain.rename({"ci_low": "accuracy_ci_low", "ci_high": "accuracy_ci_high"})
    return frame.select(
        "model", (pl.col("base_config") + ":" + pl.col("method")).alias("option"), "n", views.short_verifier(),
        "accuracy", views.ci_column(frame, "accuracy").alias("accuracy 95% CI (%)"),
        (100 * pl.col("gain")).alias("gain (points)"), views.ci_column(frame, "gain", signed=True).alias("gain 95% CI (points)"),
        views.short_verifier("reference"), pl.col("reference_accuracy").alias("reference accuracy"),
        pl.col("n_problems").alias("problems"), "dataset",
    )  # fmt: skip
