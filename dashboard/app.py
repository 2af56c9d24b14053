"""The ttscale dashboard: `ttscale dashboard` (or `streamlit run dashboard/app.py`).

Declares the pages and the sidebar every page shares; each page lives in `pages/<name>.py`,
reads its widgets, loads through `loaders` (cached reads of `ttscale.store` and calls of
`ttscale.analysis`) and draws with `charts`. The store is read through
`TTSCALE_DASHBOARD_DATABASE_URL` (a read-only role on a team install), else the store URL.
"""

from __future__ import annotations

import loaders
import streamlit as st

from ttscale.redaction import store_label

st.set_page_config(page_title="ttscale", page_icon=":material/show_chart:", layout="wide")

PAGES = [
    st.Page("pages/findings.py", title="Findings", icon=":material/lightbulb:", default=True),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/list_alt:"),
    st.Page("pages/frontiers.py", title="Frontiers", icon=":material/show_chart:"),
    st.Page("pages/compute_optimal.py", title="Compute-optimal", icon=":material/target:"),
    st.Page("pages/problems.py", title="Problem explorer", icon=":material/account_tree:"),
    st.Page("pages/audit.py", title="Audit", icon=":material/fact_check:"),
]

page = st.navigation(PAGES)

with st.sidebar:
    st.caption(f"Store: {store_label(loaders.database_url())}", help="The backend and database name; the rest of the URL is not shown")
    if st.button("Refresh", help="Reload sweeps, cells and results from the store", key="refresh"):
        loaders.clear()

page.run()
