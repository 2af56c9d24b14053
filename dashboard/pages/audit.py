"""Audit: a sweep's (or a cell's) full spec, spec hash, code version, timings, counts, how well
each cell's verifier separates right from wrong candidates, a learned verifier's training data
and metrics (read from its model folder only under the model cache or TTSCALE_HOME and only if
its fingerprint matches), links to its Prefect flow run and MLflow run, and the export as
parquet or CSV."""

from __future__ import annotations

import json

import finding_views
import loaders
import links
import model_card_views
import polars as pl
import streamlit as st
import views
import widgets

st.title("Audit")
url = loaders.database_url()
scope = widgets.pick_scope(url, key="audit_scope", allow_all=False)
if scope is None:
    st.stop()
settings = loaders.settings()
cells = loaders.cells(url).filter(pl.col("cell_id").is_in(list(scope.cell_ids)))

if scope.sweep is None:  # cells outside sweeps: audit one cell
    cell = widgets.pick_cell(url, scope, key="audit_cell")
    if cell is None:
        st.stop()
    cells = cells.filter(pl.col("cell_id") == cell["cell_id"])
    record = cell
    kind = "cell"
    record_id = cell["cell_id"]
else:
    record = scope.sweep
    kind = "sweep"
    record_id = record["sweep_id"]

runs = loaders.cell_runs(url, tuple(cells["cell_id"].to_list()))

st.subheader(kind.capitalize())
st.text(record_id)
facts = {
    "name" if kind == "sweep" else "cell": record["name"] if kind == "sweep" else record["label"],
    "status": record["status"],
    "spec hash": record.get("spec_hash") or f"cell id = sha256(canonical spec)[:16] = {record_id}",
    "code version": record["code_version"],
    "launched by": record.get("created_by", "–"),
    "created": str(record["created_at"]),
    "started": str(cells["started_at"].min()) if cells.height else "–",
    "finished": str(record.get("finished_at") or "–"),
}
# st.dataframe, not st.table: st.table renders Markdown in its cells, and these are the store's strings.
st.dataframe(pl.DataFrame({"field": list(facts), "value": [str(v) for v in facts.values()]}), hide_index=True, width="stretch", key="audit_facts")

st.markdown("**Runs**")
mlflow_url = links.mlflow_run(settings.mlflow_tracking_uri, record.get("mlflow_run_id"))
prefect_url = links.prefect_flow_run(settings.prefect_api_url, record.get("prefect_flow_run_id"))
for name, run_id, href, hint in (
    ("MLflow run", record.get("mlflow_run_id"), mlflow_url, links.mlflow_hint(settings.mlflow_tracking_uri)),
    ("Prefect flow run", record.get("prefect_flow_run_id"), prefect_url, links.prefect_hint()),
):
    if not run_id:
        st.text(f"{name}: none recorded")
    elif href:
        st.link_button(f"{name} {run_id}", href)  # the label is shown as text, the link as a URL
    else:
        st.text(f"{name}: {run_id} — {hint}")

st.markdown("**Counts and timings**")
counts = views.audit_counts(cells, runs)
a, b, c, d = st.columns(4)
a.metric("Cells", counts["cells"])
b.metric("Problems done", f"{counts['problems']:,}")
c.metric("Candidates", f"{counts['candidates']:,}")
d.metric("Tree nodes", f"{counts['nodes']:,}")
e, f, g, h = st.columns(4)
e.metric("Generated tokens", f"{counts['generated_tokens']:,}")
f.metric("Policy FLOPs", views.sci(counts["policy_flops"]))
g.metric("Verifier FLOPs", views.sci(counts["verifier_flops"]))
h.metric("Shard time (sum)", views.duration(counts["elapsed_s"]))
st.dataframe(
    views.cell_timings(cells, runs),
    hide_index=True,
    width="stretch",
    column_config={"policy FLOPs": st.column_config.NumberColumn(format="scientific")},
    key="audit_cells",
)

st.markdown("**Verifier quality**")
quality = loaders.verifier_quality(url, tuple(cells["cell_id"].to_list()))
widgets.verifier_quality(finding_views.verifier_table(quality, loaders.cells(url)), key="audit_verifiers")

learned = model_card_views.learned_verifiers(cells)
if learned:
    st.markdown("**Learned verifier**" if len(learned) == 1 else "**Learned verifiers**")
    st.caption(model_card_views.CAPTION)
    for i, name in enumerate(learned):
        widgets.learned_verifier(name, url, key=f"audit_learned_{i}")

summary, differ = loaders.agreement(url, tuple(cells["cell_id"].to_list()))
if summary.height:
    st.markdown("**Published predictions vs ttscale**")
    st.caption(
        "The reference's own predictions in the imported file (`pred_naive@k`, `pred_weighted@k`, `pred_maj@k`, `pred`), "
        "graded by ttscale, beside ttscale's selection on the same candidates; the problems where they differ below."
    )
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(summary, hide_index=True, width="stretch", key="audit_agreement",
                 column_config={"published_accuracy": pct, "ttscale_accuracy": pct})  # fmt: skip
    if differ.height:
        st.dataframe(differ, hide_index=True, width="stretch", key="audit_disagreements")

st.markdown("**Spec**")
if kind == "sweep":
    st.code(record["spec"], language="yaml")
else:
    st.code(json.dumps(json.loads(record["spec"]), indent=2), language="json")

st.markdown("**Export**")
st.caption(
    "Every table of the "
    + ("sweep (cells, problems, problem runs, candidates with text, nodes, verdicts, sweep.json)" if kind == "sweep" else "cell")
    + ", zipped; built when you click."
)
cols = st.columns(2)
for col, fmt in zip(cols, ("parquet", "csv"), strict=True):
    if kind == "sweep":
        build = lambda fmt=fmt: loaders.export_sweep_zip(url, record_id, fmt)  # noqa: E731
    else:
        build = lambda fmt=fmt: loaders.export_cell_zip(url, record_id, fmt)  # noqa: E731
    col.download_button(
        f"Download {fmt}",
        data=build,
        file_name=f"ttscale-{kind}-{record_id}-{fmt}.zip",
        mime="application/zip",
        on_click="ignore",
        key=f"export_{fmt}",
    )
