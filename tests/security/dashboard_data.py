"""The dashboard's loaders module (`dashboard/loaders.py`), imported as the Streamlit app imports it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def load():
    if str(DASHBOARD) not in sys.path:
        sys.path.insert(0, str(DASHBOARD))
    data = importlib.import_module("loaders")
    data.clear()  # no frame cached by an earlier test (the URL keys them, but be sure)
    return data
