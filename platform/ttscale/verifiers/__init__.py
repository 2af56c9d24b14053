"""Verifiers (step scorers), by registered name: `arithmetic` and `arith_chain` (programmatic checkers), `self`
(the policy judges its own steps), `rlhflow_prm` and `qwen_prm` (process reward models, GPU),
`learned:PATH` (a reward head trained by `ttscale learn train`), `scripted` (tests). A factory takes
`(policy, settings)` — and the argument after the colon for a verifier registered with one
(`argument="PATH"`) — and returns a `Verifier`; modules are imported when a verifier is loaded,
so nothing heavy loads at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ttscale.errors import SpecError
from ttscale.registry import Registry
from ttscale.verifiers.base import STEP_SEPARATOR, StepScores, Verifier, split_steps

VERIFIERS: Registry = Registry("verifier")

ARGUMENT_CHECKS: dict[str, Callable[[str], str | None]] = {}
"""Per verifier that takes an argument: a cheap check of it (files exist, a pinned hash matches)
returning an error message or None. Run by `check_verifier` before any work is queued."""

# Modules whose import registers factories. Cheap to import: each imports its engine lazily.
_MODULES = ("arithmetic", "arith_chain", "scripted", "self_verifier", "prm", "learned")


def _load_registrations() -> None:
    for module in _MODULES:
        importlib.import_module(f"ttscale.verifiers.{module}")


def verifier_names() -> list[str]:
    _load_registrations()
    return VERIFIERS.names()


def argument_check(name: str) -> Callable[[Callable[[str], str | None]], Callable[[str], str | None]]:
    """Register the check of verifier `name`'s argument (see `ARGUMENT_CHECKS`)."""

    def decorator(check: Callable[[str], str | None]) -> Callable[[str], str | None]:
        ARGUMENT_CHECKS[name] = check
        return check

    return decorator


def check_verifier(value: str, field: str = "verifier") -> None:
    """SpecError (one line, naming `field`) unless `value` names a verifier — `name`, or
    `name:ARG` for one that takes an argument, whose check passes. Loads no model."""
    _load_registrations()
    entry, arg = VERIFIERS.split(value, field=field)
    check = ARGUMENT_CHECKS.get(entry.name)
    if arg is not None and check is not None and (error := check(arg)):
        raise SpecError(f"{field}: {error}")


def load_verifier(name: str, policy, settings) -> Verifier:
    """Build the verifier `name` (or `name:ARG`); unknown names fail in one line listing the allowed ones."""
    check_verifier(name)
    entry, arg = VERIFIERS.split(name, field="verifier")
    return entry.target(policy, settings) if arg is None else entry.target(policy, settings, arg)


__all__ = [
    "ARGUMENT_CHECKS", "STEP_SEPARATOR", "StepScores", "VERIFIERS", "Verifier", "argument_check", "check_verifier",
    "load_verifier", "split_steps", "verifier_names",
]  # fmt: skip
