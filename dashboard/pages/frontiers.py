"""Frontiers: accuracy vs budget n and vs FLOPs per strategy/selection and model, with 95%
intervals; by difficulty bin; the compute-optimal curve; small model with search vs large."""

from __future__ import annotations

import charts
import loaders
import polars as pl
import streamlit as st
import views
import widgets


st.title("Frontiers")
url = loaders.database_url()
scope = widgets.pick_scope(url, key="frontier_scope")
if scope is None:
    st.stop()
bins, methods, mode, flops = widgets.analysis_options(key="frontier")
result = widgets.analysed(url, scope, bins, mode, flops, "No candidates stored for these cells yet: the frontier appears once the first shard is written.")
report = result.report

lines = views.accuracy_lines(report.accuracy, report.models)
if methods:
    lines = lines.filter(pl.col("method").is_in(methods))
st.caption(
    f"{report.settings['n_cells']} cells · {result.n_candidates:,} candidates · accuracy is the mean over "
    "problems, and over seeds when there are several; bands are 95% intervals: a t-interval across seeds, "
    "else the bootstrap's percentile interval (choose bootstrap above when a sweep has one seed)."
)
for sentence in views.frontier_captions(lines, methods):
    st.text(sentence)

st.subheader("Accuracy vs generation budget")
if lines.height == 0:
    st.info("Pick at least one selection method.")
else:
    st.altair_chart(charts.accuracy_vs_budget(lines, x="n"), key="chart_n")

st.subheader("Accuracy vs FLOPs per problem")
with_flops = lines.filter(pl.col("flops_per_problem").is_not_null())
if with_flops.height == 0:
    st.info("No FLOPs recorded for these cells (their problem runs carry no token counts).")
else:
    st.altair_chart(charts.accuracy_vs_budget(with_flops, x="flops"), key="chart_flops")

st.subheader("By difficulty")
by_bin = result.bin_accuracy
if methods:
    by_bin = by_bin.filter(pl.col("method").is_in(methods))
if by_bin.height == 0:
    st.info("No difficulty bins for these cells.")
else:
    st.caption(
        f"Problems binned by {bins} difficulty into quantiles per model (1 = easiest); "
        "each panel is the frontier on that bin's problems only."
    )
    st.altair_chart(charts.accuracy_by_bin(by_bin), key="chart_bins")

st.subheader("Compute-optimal curve")
if report.frontier.height == 0:
    st.info("The compute-optimal curve needs at least one budget with verdicts.")
else:
    for sentence in views.optimal_captions(report.frontier):
        st.text(sentence)
    st.altair_chart(charts.compute_optimal_curve(report.frontier), key="chart_optimal")
    st.page_link("pages/compute_optimal.py", label="Per-bin table", icon=":material/target:", query_params={"sweep": scope.key})

st.subheader("Small model with search vs large model")
n_models = report.models["model"].n_unique() if report.models.height else 0
if n_models < 2:
    st.info(
        "This comparison needs at least two models on one dataset: add a second model to the sweep's `models` "
        "(e.g. a 1B and an 8B policy) and run it."
    )
else:
    for sentence in views.comparison_captions(report.comparison):
        st.text(sentence)
    for dataset in sorted(set(report.models["dataset"].to_list())):
        st.altair_chart(charts.model_comparison(report.models, report.comparison, dataset), key=f"chart_models_{dataset}")
