"""Findings, the page the dashboard opens on: the answer first (which strategy to use at which
budget and difficulty), then every finding of the analysis, each linked to the page that shows
its numbers and to the candidates behind it, the verifiers' quality and their gains over one
another at equal budgets, and the sweep's progress.

Sentences carry model, dataset and option names from the store: they are shown with `st.text`
(never as Markdown); link labels and headings are our own words."""

from __future__ import annotations

import finding_views
import loaders
import polars as pl
import streamlit as st
import views
import widgets


st.title("Findings")
url = loaders.database_url()
left, right = st.columns([3, 1])
with left:
    scope = widgets.pick_scope(url, key="findings_scope")
if scope is None:
    st.stop()
bins = right.selectbox(
    "Difficulty bins",
    ["oracle", "predicted", "level"],
    help="oracle: quantiles of the base model's pass@1; predicted: of the verifier's mean score; level: the dataset's levels",
    key="findings_bins",
)
result = widgets.analysed(
    url, scope, bins, empty="No candidates stored for these cells yet: the findings appear once the first shard is written."
)
found = loaders.findings(url, scope.cell_ids, bins)
report = result.report

if scope.sweep is not None and scope.sweep["status"] != "done":
    st.info(f"This sweep is {scope.sweep['status']}: the findings cover the problems stored so far. Press **Refresh** for newer ones.")

with st.container(border=True, key="headline"):
    st.markdown("**What to use**")
    st.text(found.headline or "No option has verdicts at any budget yet.")
    widgets.draw_links(finding_views.headline_links(scope.key))
st.caption(
    f"{report.settings['n_cells']} cell{'s' if report.settings['n_cells'] != 1 else ''} · {result.n_candidates:,} candidates · accuracy over the problems with 95% "
    f"intervals (Wilson over problems); difficulty bins: {bins} (1 = easiest); choosing per bin is cross-fitted on two halves "
    "of the problems. Subsets of n: first n candidates (as the reference); FLOPs charged as the reference counts them — "
    "change either on the Frontiers page."
)

for key, title, items in finding_views.finding_sections(list(found.findings), found.cells, scope.key):
    st.subheader(title)
    if not items and key != "verifier":
        st.caption(finding_views.EMPTY.get(key, ""))
    for item in items:
        with st.container(border=True):
            st.text(item.text)
            widgets.draw_links(item.links)
    if key == "verifier":
        widgets.verifier_quality(finding_views.verifier_table(report.verifiers, loaders.cells(url)), key="findings_verifiers")
        widgets.verifier_gain(finding_views.verifier_gain_table(report.verifier_gain), key="findings_verifier_gain")

st.subheader("Sweep")
if scope.sweep is not None:
    now = widgets.now()
    progress = views.cell_progress(loaders.cells(url), now)
    sweep = views.sweep_progress(loaders.sweeps(url).filter(pl.col("sweep_id") == scope.key), progress, loaders.memberships(url), now)
    st.dataframe(
        views.sweep_table(sweep),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", format="percent", min_value=0.0, max_value=1.0),
            "launched": st.column_config.DatetimeColumn("launched", format="YYYY-MM-DD HH:mm"),
            "finished_at": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm"),
        },
        key="findings_sweep",
    )
else:
    st.caption(f"{len(scope.cell_ids)} cell{'s' if len(scope.cell_ids) != 1 else ''}, not one sweep.")
widgets.draw_links(finding_views.sweep_links(scope.key))
