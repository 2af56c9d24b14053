"""docs/cli.md, docs/spec.md and docs/fidelity.md are what their scripts render from the code: an
option, spec field or fidelity difference added, renamed or re-documented without regenerating
the reference fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "script,doc,landmarks",
    [
        ("cli_reference", "cli.md", ["## `ttscale sweep run`", "| `--format` |"]),
        ("spec_reference", "spec.md", ["## Strategy `dvts`", "| `beam_width` |"]),
        ("fidelity_reference", "fidelity.md", ["| Step splitting for the verifier |", "`search-and-learn`"]),
    ],
)
def test_reference_matches_the_code(script, doc, landmarks):
    spec = importlib.util.spec_from_file_location(script, ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert all(mark in rendered for mark in landmarks)
    assert (ROOT / "docs" / doc).read_text(encoding="utf-8") == rendered, (
        f"docs/{doc} is stale: run `.venv/bin/python scripts/{script}.py`"
    )
