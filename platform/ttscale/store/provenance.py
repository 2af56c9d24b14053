"""The code version recorded with every sweep and cell: package version plus git commit.

`0.1.0+g1a2b3c4d5e6f` when the package runs from a git checkout, with `.dirty` appended when
tracked files differ from that commit. Images have no `.git`: their build writes the commit to
`platform/ttscale/BUILD_COMMIT` (docker/*.Dockerfile, build arg GIT_SHA), which is used instead.
Just `0.1.0` when neither is there. Computed once per process.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import ttscale


def repo_root() -> Path:
    """The checkout this package was imported from (platform/ttscale/__init__.py → repo)."""
    return Path(ttscale.__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_root()), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def code_version() -> str:
    """`<package version>[+g<12-hex sha>[.dirty]]`, cached for the process."""
    version = ttscale.__version__
    sha = _git("rev-parse", "--short=12", "HEAD")
    if not sha:
        stamped = Path(ttscale.__file__).with_name("BUILD_COMMIT")
        text = stamped.read_text(encoding="ascii").strip() if stamped.is_file() else ""
        return f"{version}+g{text[:12]}" if text else version
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{version}+g{sha}{'.dirty' if dirty else ''}"
