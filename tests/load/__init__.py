"""Load tests (all `slow`): concurrent shard writers into one PostgreSQL store, and the
dashboard under browser load while a sweep writes. `TTSCALE_LOAD_FULL=1` runs the full sizes
(1,000,000 nodes; a 1,024,000-candidate sweep) instead of the default smaller ones."""

import importlib.util
import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def full_size() -> bool:
    return os.environ.get("TTSCALE_LOAD_FULL", "") not in ("", "0")


def benchmark(name: str):
    """A module of benchmarks/ (a folder of scripts, not a package), importable by its name so
    that spawned worker processes can import it too."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
