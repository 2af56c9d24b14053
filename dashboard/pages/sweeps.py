"""Sweeps: status and progress of every sweep, its cells, and the cells run outside sweeps."""

from __future__ import annotations

import loaders
import polars as pl
import streamlit as st
import views
import widgets

st.title("Sweeps")
url = loaders.database_url()
sweeps = loaders.sweeps(url)
cells = loaders.cells(url)
if sweeps.height == 0 and cells.height == 0:
    st.info(
        "No sweeps yet: run `ttscale sweep run examples/demo.yaml` (or one cell with "
        "`ttscale run --model scripted --dataset arith --limit 20 --strategy best_of_n --n 8 --verifier scripted`), "
        "then press **Refresh** in the sidebar."
    )
    st.stop()

now = widgets.now()
members = loaders.memberships(url)
progress = views.cell_progress(cells, now)
table = views.sweep_progress(sweeps, progress, members, now)

left, middle, right = st.columns(3)
models = left.multiselect("Model", sorted(set(cells["model"].to_list())), key="f_model")
datasets = middle.multiselect("Dataset", sorted(set(cells["dataset"].to_list())), key="f_dataset")
strategies = right.multiselect("Strategy", sorted(set(cells["strategy"].to_list())), key="f_strategy")
shown = views.filter_sweeps(table, models, datasets, strategies)

a, b, c, d = st.columns(4)
a.metric("Sweeps", shown.height)
b.metric("Running", shown.filter(pl.col("status") == "running").height)
c.metric("Cells", cells.height)
d.metric("Problems done (all cells)", int(progress["n_problems_done"].sum()))

CELL_COLUMNS = {
    "status": st.column_config.TextColumn("status"),
    "progress": st.column_config.ProgressColumn("progress", format="percent", min_value=0.0, max_value=1.0),
    "policy_flops": st.column_config.NumberColumn("policy FLOPs", format="scientific"),
    "elapsed": st.column_config.TextColumn("elapsed"),
}

st.subheader("Sweeps")
if shown.height == 0:
    st.info("No sweep matches these filters." if sweeps.height else "No sweeps yet: run `ttscale sweep run examples/demo.yaml`.")
else:
    st.dataframe(
        views.sweep_table(shown),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": CELL_COLUMNS["progress"],
            "launched": st.column_config.DatetimeColumn("launched", format="YYYY-MM-DD HH:mm"),
            "finished_at": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm"),
        },
        key="sweeps_table",
    )
    ids = shown["sweep_id"].to_list()
    names = dict(zip(ids, shown["name"].to_list(), strict=True))
    chosen = st.selectbox("Cells of sweep", ids, format_func=lambda i: f"{names[i]} · {i}", key="sweep_cells")
    sweep_cells = views.filter_cells(views.cells_of(progress, members, chosen), models, datasets, strategies)
    st.page_link("pages/audit.py", label="Audit this sweep (spec, timings, export)", icon=":material/fact_check:", query_params={"sweep": chosen})


def cell_table(frame: pl.DataFrame, key: str) -> None:
    st.dataframe(
        views.cell_table(frame),
        hide_index=True,
        width="stretch",
        column_config={**CELL_COLUMNS, "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")},
        key=key,
    )


if shown.height:
    cell_table(sweep_cells, "sweep_cells_table")

st.subheader("Cells run outside sweeps")
loose = views.filter_cells(views.unswept_cells(progress, members), models, datasets, strategies)
if loose.height == 0:
    st.caption("None. `ttscale run ...` stores a single cell here.")
else:
    cell_table(loose, "loose_cells_table")
