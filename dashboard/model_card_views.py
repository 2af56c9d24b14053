"""What the audit page shows of a learned verifier, from `ttscale.learning.model_card`: pure
functions, as in `views`.

A `ModelCard` becomes plain frames (facts, metrics per split, the data card per split, the cells
it was trained from) shown with `st.dataframe`, never as Markdown: every string in them came
from a file or the store. Links to the training cells' audit views carry our own words and a
stored cell id only.
"""

from __future__ import annotations

import re

import finding_views
import polars as pl

from ttscale.learning.model_card import SPLITS, ModelCard, is_learned
from ttscale.reward_model import short_name

UNSWEPT = "__unswept__"
"""The audit page's scope of cells run outside sweeps (`widgets.UNSWEPT`)."""
CELL_ID = re.compile(r"^[0-9a-f]{16}$")
CAPTION = (
    "Read from the model folder the stored name points to, only when it lies under the model cache or TTSCALE_HOME "
    "(symlinks resolved) and its fingerprint — sha256 of config.json, head.npz and metrics.json — equals the one the "
    "cell ran with. Metrics are those `ttscale learn train` recorded: step AUC (every labelled step prefix against its "
    "hard label: some continuation below it reached the right answer), final AUC (the steps candidates end on), each "
    "also averaged within problems (what selection among one problem's candidates sees), Brier score and ECE (10 bins) "
    "against the soft label (the share of right candidates below). The data card is the copy inside metrics.json."
)
METRIC_COLUMNS = {
    "n_steps": "labelled steps", "n_problems": "problems", "step_auc": "step AUC", "step_auc_within": "step AUC within problems",
    "final_auc": "final AUC", "final_auc_within": "final AUC within problems", "brier": "Brier", "ece": "ECE",
}  # fmt: skip
BALANCE_COLUMNS = {
    "problems": "problems", "rows": "step prefixes", "labelled": "labelled", "hard_positive_share": "hard positive share",
    "soft_mean": "soft label mean",
}  # fmt: skip


def learned_verifiers(cells: pl.DataFrame) -> list[str]:
    """The distinct `learned:` verifiers of the cells, as stored."""
    return sorted({v for v in cells["verifier"].drop_nulls().to_list() if is_learned(v)})


def _text(value: object) -> str:
    return "–" if value is None else str(value)


def model_facts(card: ModelCard) -> pl.DataFrame:
    """field, value: the folder, its fingerprint, what the head reads and how it was chosen, and
    where its data came from (a read card only)."""
    c, chosen, data = card.config, card.chosen, card.card
    facts = {
        "display name": short_name(card.verifier),
        "model folder": card.folder,
        "fingerprint": f"{card.fingerprint} — matches the folder (sha256 of config.json, head.npz, metrics.json)",
        "backbone": _text(c.get("backbone")),
        "layer read": _text(c.get("layer")),
        "head chosen on validation": f"{_text(chosen.get('head'))}, l2 {_text(chosen.get('l2'))}, layer {_text(chosen.get('layer'))}",
        "trained on label": _text(chosen.get("label") or c.get("label")),
        "data card sha256": _text(card.card_sha256),
        "data from": ", ".join(data.get("targets") or []) or "–",
        "data created": _text(data.get("created_at")),
        "data code version": _text(data.get("code_version")),
        "split": f"{_text(data.get('split_by'))}; fractions {data.get('split_fractions') or '–'}",
        "stored nodes": f"{_text(data.get('n_nodes'))} ({_text(data.get('n_nodes_labelled'))} labelled, "
        f"{_text(data.get('n_nodes_unlabelled'))} with no candidate below)",
        "graded candidates": _text(data.get("n_candidates")),
    }
    return pl.DataFrame({"field": list(facts), "value": list(facts.values())}, schema={"field": pl.String, "value": pl.String})


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metrics_table(card: ModelCard) -> pl.DataFrame:
    """One row per split the training had: labelled steps, problems, step and final AUC (pooled
    and within problems), Brier, ECE (non-numbers from the file show as empty)."""
    rows = [{"split": split, **{label: _number(card.metrics[split].get(key)) for key, label in METRIC_COLUMNS.items()}}
            for split in SPLITS if split in card.metrics]  # fmt: skip
    schema = {"split": pl.String, **{label: pl.Float64 for label in METRIC_COLUMNS.values()}}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def data_table(card: ModelCard) -> pl.DataFrame:
    """The data card's counts and label balance, over all step prefixes and per split."""
    parts = [("all", card.card.get("balance") or {})] + [(s, b) for s, b in (card.card.get("splits") or {}).items()]
    rows = [{"split": name, **{label: _number(b.get(key)) for key, label in BALANCE_COLUMNS.items()}} for name, b in parts]
    schema = {"split": pl.String, **{label: pl.Float64 for label in BALANCE_COLUMNS.values()}}
    return pl.DataFrame(rows, schema=schema, orient="row")


def training_cells(card: ModelCard, stored: pl.DataFrame) -> pl.DataFrame:
    """The card's generating cells, each marked whether this store holds it (`stored`: the
    store's cell list)."""
    ids = set(stored["cell_id"].to_list())
    rows = [
        {"cell_id": _text(c.get("cell_id")), "in this store": "yes" if c.get("cell_id") in ids else "no",
         "model": _text(c.get("model")), "strategy": _text(c.get("strategy")), "verifier": _text(c.get("verifier")),
         "n": _text(c.get("n")), "dataset": _text(c.get("dataset")), "seed": _text(c.get("seed")),
         "problems": _text(c.get("n_problems_done"))}
        for c in card.cells
    ]  # fmt: skip
    columns = ["cell_id", "in this store", "model", "strategy", "verifier", "n", "dataset", "seed", "problems"]
    frame = pl.DataFrame(rows, schema={c: pl.String for c in columns}, orient="row")
    return frame.with_columns(pl.col("verifier").map_elements(short_name, return_dtype=pl.String))


def training_links(card: ModelCard, stored: pl.DataFrame, memberships: pl.DataFrame) -> tuple[finding_views.Link, ...]:
    """Audit views of the training cells this store holds: one per sweep that holds some (the
    audit page audits a sweep whole), one per cell run outside sweeps."""
    ids = set(stored["cell_id"].to_list())
    held = [c["cell_id"] for c in card.cells if isinstance(c.get("cell_id"), str) and c["cell_id"] in ids and CELL_ID.match(c["cell_id"])]
    sweep_of = dict(memberships.filter(pl.col("cell_id").is_in(held)).select("cell_id", "sweep_id").iter_rows())
    out, seen = [], set()
    for cell_id in held:
        sweep = sweep_of.get(cell_id)
        if sweep is None:
            out.append(finding_views.Link("audit", f"Audit: training cell {cell_id}", {"sweep": UNSWEPT, "cell": cell_id}))
        elif sweep not in seen:
            seen.add(sweep)
            k = sum(1 for c in held if sweep_of.get(c) == sweep)
            out.append(finding_views.Link("audit", f"Audit: the sweep of {k} training cell{'s' if k != 1 else ''} (cell {cell_id})", {"sweep": sweep, "cell": cell_id}))
    return tuple(out)


def left_out(card: ModelCard) -> str | None:
    """A line when the card names more cells than are listed."""
    shown = len(card.cells)
    return None if card.n_cells <= shown else f"The card names {card.n_cells} generating cells; the first {shown} are listed."
