"""docs/architecture.md names real files and the layers .importlinter enforces: a moved module
or a changed layer without the guide following fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_path_named_in_the_guide_exists():
    paths = set(re.findall(r"`((?:platform|flows|dashboard|migrations|scripts|tests)/[\w./<>-]*)`", DOC))
    assert len(paths) > 20
    missing = [p for p in sorted(paths) if "<" not in p and not (ROOT / p).exists()]
    assert not missing, missing


def test_the_layers_in_the_guide_are_the_enforced_ones():
    config = (ROOT / ".importlinter").read_text(encoding="utf-8")
    enforced = re.search(r"\[importlinter:contract:layers\][\s\S]*?layers =\n((?:    .+\n)+)", config).group(1)
    written = re.search(r"## Layers[\s\S]*?```\n([\s\S]*?)```", DOC).group(1)
    assert [line.strip() for line in enforced.splitlines()] == [line.strip() for line in written.splitlines()]
