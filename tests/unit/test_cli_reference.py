"""docs/cli.md is what scripts/cli_reference.py renders from the commands: an option added,
renamed or re-documented without regenerating the reference fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_matches_the_commands():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render()
    assert "## `ttscale sweep run`" in rendered and "| `--format` |" in rendered
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == rendered, (
        "docs/cli.md is stale: run `.venv/bin/python scripts/cli_reference.py`"
    )
