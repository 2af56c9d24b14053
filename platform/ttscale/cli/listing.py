"""`ttscale ls KIND`: what can be named in specs and options, with one line each."""

from __future__ import annotations

import typer

from ttscale.data import DATASETS
from ttscale.errors import SpecError
from ttscale.models import MODELS
from ttscale.registry import Registry
from ttscale.strategies import STRATEGIES, strategy_names
from ttscale.verifiers import VERIFIERS, verifier_names

KINDS = ("strategies", "verifiers", "datasets", "models", "aggregations")


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls(kind: str = typer.Argument(..., help=f"One of: {', '.join(KINDS)}")) -> None:
        """List the registered names of one kind, with a description each."""
        if kind not in KINDS:
            raise SpecError(f"kind: unknown {kind!r}; allowed: {', '.join(KINDS)}")
        if kind == "aggregations":
            rows = [("last", "score of the last step (reference default)"), ("min", "weakest step"), ("prod", "product of step scores")]
        else:
            registry = _registry(kind)
            rows = [(e.usage, e.description) for e in registry]
        width = max(len(name) for name, _ in rows)
        for name, description in rows:
            typer.echo(f"{name.ljust(width)}  {description}")


def _registry(kind: str) -> Registry:
    if kind == "strategies":
        strategy_names()  # every strategy module registered
        return STRATEGIES
    if kind == "verifiers":
        verifier_names()
        return VERIFIERS
    return DATASETS if kind == "datasets" else MODELS
