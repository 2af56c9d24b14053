"""Test-time search strategies, by registered name: `majority`, `best_of_n`, `beam_search`,
`dvts`, `self_refine`. Each is `run(problems, n, params, ctx) -> list[ProblemResult]`, batched
across all problems it is given; see each module's docstring for the algorithm and reference.
"""

from __future__ import annotations

import importlib

from ttscale.registry import Registry

STRATEGIES: Registry = Registry("strategy")
_MODULES = ("best_of_n", "beam_search", "dvts", "self_refine")


def load_strategy(name: str):
    for module in _MODULES:
        importlib.import_module(f"ttscale.strategies.{module}")
    return STRATEGIES.get(name, field="strategy")


def strategy_names() -> list[str]:
    for module in _MODULES:
        importlib.import_module(f"ttscale.strategies.{module}")
    return STRATEGIES.names()
