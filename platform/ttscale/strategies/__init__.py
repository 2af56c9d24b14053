"""Test-time search strategies, registered under their parameter model's name.

Each strategy module defines `run(problems, n, params, ctx) -> list[ProblemResult]`, batched
across all problems it is given, and registers it with `@register(ItsParams)`; see each
module's docstring for the algorithm and reference. `run_strategy` dispatches on the
parameters' `name` and refuses parameters of another strategy's type. Every module of this
package is imported on first lookup, so a new strategy needs no list entry here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ttscale.registry import Registry
from ttscale.strategy_params import StrategyParams
from ttscale.tree import Problem, ProblemResult

Strategy = Callable[[Sequence[Problem], int, Any, Any], list[ProblemResult]]
"""`(problems, n, params, ctx) -> results`, one result per problem, in order."""


@dataclass(frozen=True)
class RegisteredStrategy:
    params_type: type[StrategyParams]
    run: Strategy


STRATEGIES: Registry[RegisteredStrategy] = Registry("strategy")
_HELPERS = frozenset({"common"})


def register(params_type: type[StrategyParams]) -> Callable[[Strategy], Strategy]:
    """Register the decorated function as the algorithm of `params_type`'s strategy."""

    def decorator(fn: Strategy) -> Strategy:
        name = params_type.model_fields["name"].default
        STRATEGIES.register(name, params_type.summary)(RegisteredStrategy(params_type, fn))
        return fn

    return decorator


def _load_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _HELPERS:
            importlib.import_module(f"{__name__}.{module.name}")


def load_strategy(name: str) -> Strategy:
    """The strategy registered as `name`, checking the type of the parameters it is given."""
    _load_modules()
    entry = STRATEGIES.get(name, field="strategy")

    def run(problems: Sequence[Problem], n: int, params: StrategyParams, ctx: Any) -> list[ProblemResult]:
        if not isinstance(params, entry.params_type):
            raise TypeError(f"strategy {name} needs {entry.params_type.__name__}, got {type(params).__name__}")
        return entry.run(problems, n, params, ctx)

    return run


def run_strategy(problems: Sequence[Problem], n: int, params: StrategyParams, ctx: Any) -> list[ProblemResult]:
    """Run the strategy `params` belong to."""
    return load_strategy(params.name)(problems, n, params, ctx)


def strategy_names() -> list[str]:
    _load_modules()
    return STRATEGIES.names()
