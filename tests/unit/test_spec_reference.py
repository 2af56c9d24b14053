"""docs/spec.md is what scripts/spec_reference.py renders from the spec models: a field added,
renamed or re-documented without regenerating the reference fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_spec_reference_matches_the_models():
    spec = importlib.util.spec_from_file_location("spec_reference", ROOT / "scripts" / "spec_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert "## Strategy `dvts`" in rendered and "| `beam_width` |" in rendered
    assert (ROOT / "docs" / "spec.md").read_text(encoding="utf-8") == rendered, (
        "docs/spec.md is stale: run `.venv/bin/python scripts/spec_reference.py`"
    )
