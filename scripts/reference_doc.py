"""The command line shared by the generated-reference scripts (cli_reference.py, spec_reference.py):
write the rendered text to its file, or with `--check` exit 1 when the file differs from it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def main(render: Callable[[], str], out: Path) -> None:
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if out.read_text(encoding="utf-8") == text else 1)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
