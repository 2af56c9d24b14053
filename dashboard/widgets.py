"""Widgets several pages share: which sweep or cells to look at, and the empty states.

A choice is mirrored in the URL (`?sweep=ID`, `?cell=ID`, `?problem=ID`), so a view can be
linked to and survives a page switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import finding_views
import loaders
import model_card_views
import polars as pl
import streamlit as st
import views

from ttscale.errors import TtscaleError

ALL_CELLS = "__all__"
UNSWEPT = "__unswept__"

NO_RESULTS = (
    "No results in this store yet. Run a sweep: `ttscale sweep run examples/demo.yaml`, "
    "or one cell: `ttscale run --model scripted --dataset arith --limit 20 --strategy best_of_n --n 8 --verifier scripted`. "
    "Then press **Refresh** in the sidebar."
)


@dataclass(frozen=True)
class Scope:
    key: str
    """A sweep id, `ALL_CELLS` or `UNSWEPT`."""
    label: str
    cell_ids: tuple[str, ...]
    sweep: dict | None


def now() -> datetime:
    return datetime.now(UTC)


def _param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if value else None


def _remember(name: str, value: str | None) -> None:
    if value is None:
        st.query_params.pop(name, None)
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


def pick_scope(url: str, *, key: str = "scope", allow_all: bool = True) -> Scope | None:
    """A selectbox of sweeps (newest first), the cells run outside sweeps and all cells.

    None (after showing the empty state) when the store holds no cell."""
    sweeps = loaders.sweeps(url)
    cells = loaders.cells(url)
    members = loaders.memberships(url)
    if cells.height == 0:
        st.info(NO_RESULTS)
        return None
    options: dict[str, str] = {}
    for row in sweeps.iter_rows(named=True):
        options[row["sweep_id"]] = f"{row['name']} · {row['status']} · {row['sweep_id']}"
    unswept = cells.filter(~pl.col("cell_id").is_in(members["cell_id"].to_list()))
    if unswept.height:
        options[UNSWEPT] = f"cells run outside sweeps ({unswept.height})"
    if allow_all:
        options[ALL_CELLS] = f"all cells ({cells.height})"
    keys = list(options)
    wanted = _param("sweep")
    index = keys.index(wanted) if wanted in options else 0
    chosen = st.selectbox("Sweep", keys, index=index, format_func=options.__getitem__, key=key)
    _remember("sweep", chosen)
    if chosen == ALL_CELLS:
        ids = cells["cell_id"].to_list()
        sweep = None
    elif chosen == UNSWEPT:
        ids = unswept["cell_id"].to_list()
        sweep = None
    else:
        ids = members.filter(pl.col("sweep_id") == chosen)["cell_id"].to_list()
        sweep = sweeps.filter(pl.col("sweep_id") == chosen).row(0, named=True)
    return Scope(chosen, options[chosen], tuple(sorted(ids)), sweep)


def pick_cell(url: str, scope: Scope, *, key: str = "cell") -> dict | None:
    """A selectbox of the scope's cells that have results; returns the cell's row."""
    cells = loaders.cells(url).filter(pl.col("cell_id").is_in(list(scope.cell_ids)))
    cells = cells.filter(pl.col("n_problems_done") > 0).with_columns(views.cell_label().alias("label"))
    if cells.height == 0:
        st.info("No cell in this sweep has stored problems yet: wait for its first shard, then press **Refresh**.")
        return None
    ids = cells["cell_id"].to_list()
    labels = dict(zip(ids, cells["label"].to_list(), strict=True))
    wanted = _param("cell")
    chosen = st.selectbox("Cell", ids, index=ids.index(wanted) if wanted in labels else 0, format_func=labels.__getitem__, key=key)
    _remember("cell", chosen)
    return cells.filter(pl.col("cell_id") == chosen).row(0, named=True)


def analysed(
    url: str, scope: Scope, bins: str, mode: str = "prefix", flops: str = "charged", empty: str = "No candidates stored for these cells yet."
) -> loaders.Analysis:
    """The scope's analysis, or (after saying why) a stopped page: bins that cannot be built
    from these cells, or no candidates yet."""
    try:
        result = loaders.analyse(url, scope.cell_ids, bins, mode, flops)
    except TtscaleError as err:
        st.warning("These difficulty bins cannot be built from these cells. Pick another kind.")
        st.text(str(err))
        st.stop()
    if result is None:
        st.info(empty)
        st.stop()
    return result


def analysis_options(*, key: str) -> tuple[str, list[str], str, str]:
    """Difficulty bins, the selection methods to show, how budgets below N are subsampled, and
    which FLOPs the compute axis counts."""
    left, middle, right, last = st.columns([1, 1, 2, 1])
    bins = left.selectbox(
        "Difficulty bins",
        ["oracle", "predicted", "level"],
        help="oracle: quantiles of the base model's pass@1; predicted: of the verifier's mean score; level: the dataset's levels",
        key=f"{key}_bins",
    )
    methods = right.multiselect(
        "Selection methods",
        ["naive", "weighted", "majority", "pass"],
        default=["naive", "weighted", "majority"],
        help="pass = pass@n, an oracle upper bound (it looks at the gold answer)",
        key=f"{key}_methods",
    )
    mode = middle.selectbox(
        "Subsets of n",
        ["prefix", "bootstrap"],
        format_func={"prefix": "first n (reference)", "bootstrap": "bootstrap (32 draws)"}.__getitem__,
        help=(
            "first n: the first n candidates of each problem, as the reference scores Best-of-N; intervals come from "
            "seeds. bootstrap: 32 random subsets of size n per problem, averaged, with a percentile interval per cell "
            "(slower on large sweeps)."
        ),
        key=f"{key}_mode",
    )
    flops = last.selectbox(
        "FLOPs",
        ["charged", "computed"],
        help=(
            "charged: generated tokens, as the reference and Snell et al. count them; computed: also the prompt "
            "tokens the engine computed (not served from its prefix cache)"
        ),
        key=f"{key}_flops",
    )
    return bins, methods, mode, flops


def verifier_quality(table: pl.DataFrame, *, key: str) -> None:
    """`finding_views.verifier_table` rows: a warning when some verifier is flat, the table, and
    what the columns mean."""
    if table.height == 0:
        st.caption(finding_views.EMPTY["verifier"])
        return
    warning = finding_views.verifier_warning(table)
    if warning:
        st.warning(warning, icon=":material/warning:")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "AUC": st.column_config.NumberColumn(format="%.2f"),
            "AUC within problems": st.column_config.NumberColumn(format="%.2f"),
            "tied pairs": st.column_config.NumberColumn(format="percent"),
        },
        key=key,
    )
    st.caption(finding_views.VERIFIER_CAPTION)


def draw_links(links: tuple[finding_views.Link, ...]) -> None:
    """Page links side by side (labels are our own words: Streamlit renders them as Markdown)."""
    with st.container(horizontal=True):
        for link in links:
            st.page_link(link.script, label=link.label, icon=link.icon, query_params=link.query)


def verifier_gain(table: pl.DataFrame, *, key: str) -> None:
    """`finding_views.verifier_gain_table` rows under their heading, with what they mean; one
    line when no option ran under several verifiers."""
    st.markdown("**Verifiers at equal budgets**")
    if table.height == 0:
        st.caption(finding_views.GAIN_EMPTY)
        return
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "accuracy": st.column_config.NumberColumn(format="percent"),
            "reference accuracy": st.column_config.NumberColumn(format="percent"),
            "gain (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
        key=key,
    )
    st.caption(finding_views.GAIN_CAPTION)


def learned_verifier(verifier: str, url: str, *, key: str) -> None:
    """A stored `learned:` verifier's panel: its folder, fingerprint, metrics, data card and the
    cells it was trained from (linked to their audit views), or the one line why it was not read."""
    card = loaders.learned_model(verifier)
    with st.container(border=True, key=key):
        st.text(verifier)  # the stored name in full, as text
        if card.refusal is not None:
            st.text(card.refusal)
            return
        st.dataframe(model_card_views.model_facts(card), hide_index=True, width="stretch", height="content", key=f"{key}_facts")
        st.markdown("Validation and test metrics")
        st.dataframe(model_card_views.metrics_table(card), hide_index=True, width="stretch", key=f"{key}_metrics",
                     column_config={c: st.column_config.NumberColumn(format="%.4g") for c in model_card_views.METRIC_COLUMNS.values()})  # fmt: skip
        st.markdown("Data card: step prefixes and label balance")
        st.dataframe(model_card_views.data_table(card), hide_index=True, width="stretch", key=f"{key}_data")
        st.markdown("Cells it was trained from")
        cells = loaders.cells(url)
        st.dataframe(model_card_views.training_cells(card, cells), hide_index=True, width="stretch", key=f"{key}_cells")
        if note := model_card_views.left_out(card):
            st.caption(note)
        draw_links(model_card_views.training_links(card, cells, loaders.memberships(url)))
