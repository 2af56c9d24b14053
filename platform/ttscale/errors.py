"""Errors users can act on. One base class, one subclass per boundary.

A message is one line: the field path as the user wrote it, the rule, the value. The CLI
prints these without a traceback and exits 2 (bad input) or 1 (a failed run); any other
exception is a bug and keeps its traceback.
"""


class TtscaleError(Exception):
    """Base of every error ttscale raises on purpose."""

    exit_code = 2


class SpecError(TtscaleError):
    """A sweep spec, CLI option or parameter is invalid."""


class DataError(TtscaleError):
    """A dataset cannot be loaded or a row lacks a required field."""


class BackendError(TtscaleError):
    """A policy or verifier model cannot be loaded or answered wrongly."""

    exit_code = 1


class StoreError(TtscaleError):
    """The results store is unreachable, unmigrated or refused a write."""

    exit_code = 1


class TrackingError(TtscaleError):
    """The MLflow tracking server cannot be reached or refused a write."""

    exit_code = 1


class OrchestrationError(TtscaleError):
    """The orchestrator (a Prefect server or work pool) cannot be reached or refused work."""

    exit_code = 1
