"""Compute-optimal table: per difficulty bin and budget, the best strategy and its accuracy
against the best single strategy (two-fold: chosen on one half of the problems, scored on
the other), each with its 95% interval, and the gain with its interval."""

from __future__ import annotations

import charts
import loaders
import polars as pl
import streamlit as st
import views
import widgets


st.title("Compute-optimal strategy per difficulty")
url = loaders.database_url()
scope = widgets.pick_scope(url, key="optimal_scope")
if scope is None:
    st.stop()
left, right = st.columns(2)
bins = left.selectbox("Difficulty bins", ["oracle", "predicted", "level"], key="optimal_bins")
budget = right.radio("Budget", ["generations n", "FLOPs per problem", "FLOPs computed per problem"], horizontal=True, key="optimal_budget",
                     help="FLOPs per problem: charged as the reference does (generated tokens); computed: also the prompt tokens "
                     "the engine computed (not served from its prefix cache)")
report = widgets.analysed(url, scope, bins, flops="computed" if budget == "FLOPs computed per problem" else "charged").report
frontier = report.frontier if budget == "generations n" else report.frontier_flops
if frontier.height == 0:
    st.info("No budget has verdicts to compare (FLOPs need problem runs with token counts).")
    st.stop()

for sentence in views.optimal_captions(report.frontier):
    st.text(sentence)  # model and dataset names from the store: plain text, never Markdown
st.caption(
    "The best strategy is chosen per bin and budget on one half of the problems and scored on the other "
    "(both halves pooled); the best single strategy is one choice for all bins, made the same way. "
    "When the halves chose differently both are shown (fold 0 | fold 1). Intervals are 95%: Wilson over the "
    "problems for the accuracies, the paired t-interval of the per-problem differences for the gain (in points)."
)
label = "n" if budget == "generations n" else "FLOPs/problem"
table = views.optimal_table(frontier, label)
pct = st.column_config.NumberColumn(format="percent")
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "best accuracy": pct,
        "single accuracy": pct,
        "gain (points)": st.column_config.NumberColumn(format="%+.1f"),
        "FLOPs/problem": st.column_config.NumberColumn(format="scientific"),
        **({label: st.column_config.NumberColumn(format="scientific")} if label != "n" else {}),
    },
    key="optimal_table",
)
if budget == "generations n":
    for (model, dataset), group in frontier.group_by("model", "dataset", maintain_order=True):
        title = f"{model} · {dataset}: accuracy of the per-bin choice; colour = gain over the best single strategy"
        st.text(title)  # names from the store: plain text
        st.altair_chart(charts.gain_heatmap(group), key=f"heat_{model}_{dataset}")

st.subheader("Difficulty bins")
st.dataframe(
    report.bins.select("model", "dataset", "bin", pl.col("n_problems").alias("problems"), "difficulty_min", "difficulty_max"),
    hide_index=True,
    width="stretch",
    key="bins_table",
)
