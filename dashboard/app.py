"""The ttscale dashboard: `ttscale dashboard` (or `streamlit run dashboard/app.py`).

Declares the pages and the sidebar every page shares; each page lives in `pages/<name>.py`,
reads its widgets, loads through `data` (cached reads of `ttscale.store` and calls of
`ttscale.analysis`) and draws with `charts`. The store is read through
`TTSCALE_DASHBOARD_DATABASE_URL` (a read-only role on a team install), else the store URL.
"""

from __future__ import annotations

import data
import streamlit as st

from ttscale.store import redact_url

st.set_page_config(page_title="ttscale", page_icon=":material/show_chart:", layout="wide")

PAGES = [
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/list_alt:", default=True),
    st.Page("pages/frontiers.py", title="Frontiers", icon=":material/show_chart:"),
    st.Page("pages/compute_optimal.py", title="Compute-optimal", icon=":material/target:"),
    st.Page("pages/problems.py", title="Problem explorer", icon=":material/account_tree:"),
    st.Page("pages/audit.py", title="Audit", icon=":material/fact_check:"),
]

page = st.navigation(PAGES)

with st.sidebar:
    st.caption(f"Store: `{redact_url(data.database_url())}`")
    if st.button("Refresh", help="Reload sweeps, cells and results from the store", key="refresh"):
        data.clear()

page.run()
