"""Problem explorer: one problem of one cell — the gold answer, every candidate with its
extracted answer, correctness and score, what each selection method picks, and the search
tree with the chosen candidate's path."""

from __future__ import annotations

import charts
import loaders
import polars as pl
import streamlit as st
import views
import widgets

from ttscale.spec import as_cell

st.title("Problem explorer")
url = loaders.database_url()
scope = widgets.pick_scope(url, key="explorer_scope")
if scope is None:
    st.stop()
cell = widgets.pick_cell(url, scope, key="explorer_cell")
if cell is None:
    st.stop()

problems = loaders.cell_problems(url, cell["cell_id"])
left, right = st.columns([1, 3])
which = left.radio("Show", ["all", "solved by some candidate", "unsolved"], key="explorer_filter")
if which == "solved by some candidate":
    problems = problems.filter(pl.col("n_correct") > 0)
elif which == "unsolved":
    problems = problems.filter(pl.col("n_correct") == 0)
if problems.height == 0:
    st.info("No problem of this cell matches.")
    st.stop()
ids = problems["problem_id"].to_list()
summary = {
    r["problem_id"]: f"{r['problem_id']} · {r['n_correct']}/{r['n_candidates']} correct"
    + (f" · level {r['level']}" if r["level"] is not None else "")
    for r in problems.iter_rows(named=True)
}
wanted = st.query_params.get("problem")
problem_id = right.selectbox(
    "Problem", ids, index=ids.index(wanted) if wanted in summary else 0, format_func=summary.__getitem__, key="explorer_problem"
)
st.query_params["problem"] = problem_id

view = loaders.problem_view(url, cell["cell_id"], problem_id, cell["dataset"])
problem = view.problem
# Stored strings are shown as text, never as Markdown (a dataset's answer could hold a link or an image).
st.text(f"Problem {problem_id}" + (f" · level {problem.get('level')}" if problem.get("level") is not None else ""))
st.text(problem.get("text") or "")
st.text(f"Gold answer: {problem.get('answer')}")

n_max = int(view.candidates.height)
# The first n candidates of a beam search are not a beam search at n: only its own N is shown.
options = as_cell(cell["spec"]).judged_budgets(n_max) if n_max else [1]
c1, c2 = st.columns(2)
# `?n=` and `?method=` (links from the findings page) preselect the budget and the selection method.
wanted_n = st.query_params.get("n")
if len(options) > 1:
    value = int(wanted_n) if wanted_n and wanted_n.isdigit() and int(wanted_n) in options else options[-1]
    n = c1.select_slider("Budget n (first n candidates)", options=options, value=value, key="explorer_n")
else:
    n = options[0]
    c1.markdown(f"Budget n = {n} (a {cell['strategy']} cell is judged at its own N only)")
methods = sorted(set(view.verdicts["method"].to_list()) - {"pass"}) if view.verdicts.height else []
wanted_method = st.query_params.get("method")
method = c2.selectbox(
    "Highlight the candidate chosen by",
    methods or ["—"],
    index=methods.index(wanted_method) if wanted_method in methods else 0,
    key="explorer_method",
)

st.subheader("Selection")
st.dataframe(views.verdict_table(view.verdicts, view.candidates, n), hide_index=True, width="stretch", key="verdicts_table")

st.subheader(f"Candidates ({view.candidates.height})")
st.dataframe(
    views.candidate_table(view.candidates, view.verdicts, n),
    hide_index=True,
    width="stretch",
    column_config={"score": st.column_config.NumberColumn(format="%.3f")},
    key="candidates_table",
)
idx = st.selectbox("Read candidate", view.candidates["idx"].to_list(), key="explorer_candidate")
chosen_text = view.candidates.filter(pl.col("idx") == idx).row(0, named=True)
st.code(chosen_text["text"] or "", language=None, wrap_lines=True)

st.subheader("Search tree")
path = views.path_to(view.nodes, views.chosen_leaf(view.verdicts, view.candidates, n, method))
if view.nodes.height == 0:
    st.info("No search tree stored for this problem.")
else:
    points, edges = views.tree_layout(view.nodes, path)
    st.caption(
        f"{view.nodes.height} nodes; colour = step score, thick black = the path of the candidate "
        f"{method} selection picks at n={n}. Hover a node for its text; click it to read it in full below."
    )
    event = st.altair_chart(
        charts.search_tree(points, edges), on_select="rerun", selection_mode="node", key="tree_chart"
    )
    clicked = [p.get("node_id") for p in (event.selection.get("node") or [])] if event else []
    node_ids = view.nodes["node_id"].to_list()
    default = clicked[0] if clicked and clicked[0] in node_ids else (path[-1] if path else node_ids[0])
    node_id = st.selectbox("Node", node_ids, index=node_ids.index(default), key=f"explorer_node_{default}")
    node = view.nodes.filter(pl.col("node_id") == node_id).row(0, named=True)
    scores = ", ".join(f"{s:.3f}" for s in node["scores"]) or "–"
    st.text(
        f"node {node_id} · depth {node['depth']} · {node['kind']} · step scores {scores} · "
        f"{node['n_generated_tokens']} tokens · {'pruned' if node['pruned'] else 'kept'}"
        + (" · on the selected path" if node_id in path else "")
    )
    st.code(node["text"] or "", language=None, wrap_lines=True)
    if path:
        st.markdown("**Selected path**")
        st.dataframe(
            views.path_steps(view.nodes, path),
            hide_index=True,
            width="stretch",
            key="path_table",
        )
