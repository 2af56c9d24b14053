"""Verifiers (step scorers), by registered name: `arithmetic` and `arith_chain` (programmatic checkers), `self`
(the policy judges its own steps), `rlhflow_prm` and `qwen_prm` (process reward models, GPU),
`scripted` (tests). A factory takes `(policy, settings)` and returns a `Verifier`; modules are
imported when a verifier is loaded, so nothing heavy loads at import time.
"""

from __future__ import annotations

import importlib

from ttscale.registry import Registry
from ttscale.verifiers.base import STEP_SEPARATOR, StepScores, Verifier, split_steps

VERIFIERS: Registry = Registry("verifier")

# Modules whose import registers factories. Cheap to import: each imports its engine lazily.
_MODULES = ("arithmetic", "arith_chain", "scripted", "self_verifier", "prm")


def _load_registrations() -> None:
    for module in _MODULES:
        importlib.import_module(f"ttscale.verifiers.{module}")


def verifier_names() -> list[str]:
    _load_registrations()
    return VERIFIERS.names()


def load_verifier(name: str, policy, settings) -> Verifier:
    """Build the verifier `name`; unknown names fail in one line listing the allowed ones."""
    _load_registrations()
    return VERIFIERS.get(name, field="verifier")(policy, settings)


__all__ = ["STEP_SEPARATOR", "StepScores", "VERIFIERS", "Verifier", "load_verifier", "split_steps", "verifier_names"]
