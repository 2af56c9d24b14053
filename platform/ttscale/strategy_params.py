"""Each strategy's parameter model, and every trait of the strategy the rest of ttscale needs.

A strategy is declared once: its parameters (frozen pydantic fields with docstrings) and its
traits (class variables and methods below) live on one class here, and its algorithm registers
under that class in `ttscale.strategies` (`@STRATEGIES.register(BeamSearchParams)`). The planner
asks the model for the work estimate, the runner for the budgets to judge, the analysis and the
dashboard whether smaller budgets share a run, the spec whether a verifier is needed — no list
of strategy names anywhere else. Adding a strategy: its class here (and in `ALL_PARAMS`), its
module in `strategies/`, a test.

This module sits beside `spec` at the bottom of the layers: pure data, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import typing
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    return any(_accepts_bool(a) for a in typing.get_args(annotation))


def _holds_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, list | tuple) and any(isinstance(v, bool) for v in value))


class Config(BaseModel):
    """Frozen, strict configuration: unknown keys are errors, each field has a docstring, and a
    YAML `true`/`false` is never taken for a number (pydantic would read `budgets: [true]` as n=1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if field is not None and _holds_bool(value) and not _accepts_bool(field.annotation):
                    raise ValueError(f"{key}: true/false is not a valid value here, got {value!r}")
        return data


Aggregation = Literal["last", "min", "prod"]
"""How a candidate's step scores become one score (`ttscale.aggregation`)."""


class Sampling(Protocol):
    """The token limits a work estimate needs (`spec.SamplingParams` has them)."""

    max_tokens: int
    step_max_tokens: int


class StrategyParams(Config):
    """Base of every strategy's parameters: the traits default to independent sampling."""

    name: str
    needs_verifier: ClassVar[bool] = False
    """The strategy cannot run without a verifier (it searches or selects by score)."""
    shares_prefix: ClassVar[bool] = False
    """The first n candidates of a run at budget N are exactly a run at budget n, so one
    generation at the largest budget serves every smaller one (the reference scores Best-of-N
    and DVTS this way) and verdicts are judged at every power of two up to N."""
    summary: ClassVar[str] = ""
    """One line for `ttscale ls strategies` and the CLI's help."""
    applies_policy: ClassVar[bool] = False
    """The strategy applies a compute-optimal policy (`ttscale.policy`): a policy cannot choose it."""
    independent_samples: ClassVar[bool] = False
    """Its candidates are whole solutions sampled independently with the cell's settings, so any
    such samples (an adaptive cell's probes) can stand for its first candidates."""
    selects_answers: ClassVar[bool] = True
    """Its cells answer problems: a sweep, `ttscale run`, the serving endpoint and a policy may run
    it, and reports compare its verdicts. False for `rollout`, whose cells continue stored step
    prefixes only to label them (`ttscale learn dataset --rollouts`)."""

    def budget_error(self, n: int) -> str | None:
        """Why budget `n` cannot run this strategy (a message naming the field), or None."""
        return None

    @property
    def prefix_unit(self) -> int | None:
        """The smallest prefix of a run that is a run itself (budgets that share a run are
        multiples of it); None when only the whole run at N counts."""
        return 1 if self.shares_prefix else None

    def judged_budgets(self, n: int, *, every_power_of_two: bool = False) -> list[int]:
        """Budgets whose verdicts a cell at budget `n` stores: `n`, and below it the powers of
        two times `prefix_unit` (1, 2, 4, ... for independent samples; M, 2M, 4M, ... for whole
        DVTS subtrees). `every_power_of_two`: every power of two below n whatever the unit, as
        the reference's `score()` (the `search-and-learn` fidelity profile)."""
        unit = self.prefix_unit
        if unit is None:
            return [n]
        if every_power_of_two:
            unit = 1
        return [*(unit << k for k in range((n // unit).bit_length()) if (unit << k) < n), n]

    def estimate(self, n: int, sampling: Sampling) -> tuple[int, int]:
        """Upper bounds per problem at budget `n`: (sequences sampled, tokens generated if
        every sequence ran to its token limit). Default: `n` whole solutions."""
        return n, n * sampling.max_tokens

    def shown_params(self) -> dict[str, Any]:
        """The parameters as labels and trackers show them (JSON values, `name` left out)."""
        return self.model_dump(mode="json", exclude={"name"})


class MajorityParams(StrategyParams):
    """Sample N solutions; the most frequent equivalent answer wins (no verifier needed)."""

    name: Literal["majority"] = "majority"
    independent_samples: ClassVar[bool] = True
    shares_prefix: ClassVar[bool] = True
    summary: ClassVar[str] = "Sample N solutions; the most frequent equivalent answer wins"


class BestOfNParams(StrategyParams):
    """Sample N solutions, score each with the verifier, select naive/weighted/majority."""

    name: Literal["best_of_n"] = "best_of_n"
    independent_samples: ClassVar[bool] = True
    needs_verifier: ClassVar[bool] = True
    shares_prefix: ClassVar[bool] = True
    summary: ClassVar[str] = "Sample N solutions, score with the verifier, select naive/weighted/majority"


class StepSearchParams(StrategyParams):
    """What beam search and DVTS share: M, depth, lookahead, and their work estimate."""

    needs_verifier: ClassVar[bool] = True
    beam_width: int = Field(4, ge=1, le=256)
    """M: continuations sampled per kept path per step (reference: 4)."""
    n_iterations: int = Field(40, ge=1, le=200)
    """Maximum search depth in steps; the last iteration rolls out to the end (reference: 40)."""
    lookahead: int = Field(0, ge=0, le=10)
    """k: extra greedy steps rolled out only to score a step (reference: 0)."""

    def budget_error(self, n: int) -> str | None:
        if n % self.beam_width:
            return f"must be a multiple of {self.name}.beam_width={self.beam_width}, got {n}"
        return None

    def estimate(self, n: int, sampling: Sampling) -> tuple[int, int]:
        """N expansions per iteration of at most `step_max_tokens`, each with `lookahead`
        extra steps; the last iteration rolls every path out to `max_tokens`."""
        per_iteration = n * (1 + self.lookahead)
        generations = per_iteration * self.n_iterations
        tokens = per_iteration * (self.n_iterations - 1) * sampling.step_max_tokens + n * sampling.max_tokens
        return generations, tokens


class BeamSearchParams(StepSearchParams):
    """Step-level beam search against a verifier (search-and-learn `beam_search`)."""

    name: Literal["beam_search"] = "beam_search"
    summary: ClassVar[str] = "Step-level beam search: keep the N/M best paths, expand each M ways"


class DVTSParams(StepSearchParams):
    """Diverse Verifier Tree Search: N/M independent subtrees, each expanded greedily by verifier score."""

    name: Literal["dvts"] = "dvts"
    shares_prefix: ClassVar[bool] = True
    summary: ClassVar[str] = "Diverse Verifier Tree Search: N/M independent subtrees, each greedy on verifier score"

    @property
    def prefix_unit(self) -> int:
        """One whole subtree: the first n candidates are a DVTS run when n is a multiple of M."""
        return self.beam_width


class SelfRefineParams(StrategyParams):
    """N independent chains; each answer is revised by the model itself for R rounds."""

    name: Literal["self_refine"] = "self_refine"
    summary: ClassVar[str] = "N chains; the model revises its own answer for R rounds"
    n_rounds: int = Field(2, ge=1, le=16)
    """R: revision rounds after the first answer (every round is kept in the tree)."""

    def estimate(self, n: int, sampling: Sampling) -> tuple[int, int]:
        """N chains of 1 + R whole answers."""
        generations = n * (1 + self.n_rounds)
        return generations, generations * sampling.max_tokens


class ParticleFilteringParams(StrategyParams):
    """Particle filtering (Puri et al. 2025): N particles grown a step at a time, resampled in
    proportion to the verifier's reward of their paths."""

    name: Literal["particle_filtering"] = "particle_filtering"
    needs_verifier: ClassVar[bool] = True
    summary: ClassVar[str] = "Particle filtering: N particles grown step by step, resampled by the verifier's reward"
    n_iterations: int = Field(40, ge=1, le=200)
    """Maximum steps per particle; the last iteration rolls every live particle out to the end (as
    beam search's `n_iterations`)."""
    resample_temperature: float = Field(1.0, gt=0.0, le=100.0)
    """τ: particles are drawn with probability softmax(logit(r) / τ) over the problem's N particles,
    r the reward of each one's path. 1 is the paper's (and its_hub's) softmax of the reward's
    logit; larger values flatten the draw, smaller ones sharpen it."""

    def estimate(self, n: int, sampling: Sampling) -> tuple[int, int]:
        """N particles, each a step of at most `step_max_tokens` per iteration; the last
        iteration rolls every particle out to `max_tokens`."""
        tokens = n * (self.n_iterations - 1) * sampling.step_max_tokens + n * sampling.max_tokens
        return n * self.n_iterations, tokens


class AdaptiveParams(StrategyParams):
    """Apply a compute-optimal policy problem by problem: k probe samples predict the problem's
    difficulty bin, then the policy's choice for that bin runs at the cell's budget."""

    name: Literal["adaptive"] = "adaptive"
    needs_verifier: ClassVar[bool] = True
    applies_policy: ClassVar[bool] = True
    summary: ClassVar[str] = "Apply a compute-optimal policy per problem: k probes predict its bin, the bin's choice runs"
    policy: dict[str, Any]
    """The policy (`ttscale report SWEEP --policy FILE`). Written in a spec as the policy file's
    path (relative to the working directory): the spec reader embeds the file's content, so a
    cell's id covers the policy itself and a worker needs no file."""
    probes: int = Field(4, ge=1, le=256)
    """k: whole samples per problem drawn first; the mean of their verifier scores predicts its
    bin. They count as the first candidates of a chosen best_of_n/majority, else are extra."""

    def estimate(self, n: int, sampling: Sampling) -> tuple[int, int]:
        """k probes, plus the dearest of the policy's choices at budget n."""
        chosen = [
            PARAMS_BY_NAME[c["strategy"]["name"]].model_validate(c["strategy"]).estimate(n, sampling)
            for c in self.policy.get("choices", ())
            if c.get("n") == n
        ]
        generations, tokens = max(chosen, default=(0, 0))
        return self.probes + generations, self.probes * sampling.max_tokens + tokens

    def shown_params(self) -> dict[str, Any]:
        """The policy shown as the 12 hex of its canonical JSON's sha256 (`Policy.policy_id`)."""
        digest = hashlib.sha256(json.dumps(self.policy, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
        return {**super().shown_params(), "policy": digest}


class RolloutParams(StrategyParams):
    """Roll-outs for step labels (Math-Shepherd, Wang et al. 2024, §3.3): N whole continuations of
    each given step prefix, each graded as a candidate. Cells of it are made by `ttscale learn
    dataset --rollouts N` from stored trees (docs/learning.md), never written in a sweep."""

    name: Literal["rollout"] = "rollout"
    selects_answers: ClassVar[bool] = False
    summary: ClassVar[str] = "N continuations of stored step prefixes, graded to label them (made by `ttscale learn dataset --rollouts`)"
    prefixes: dict[str, tuple[tuple[str, ...], ...]] = Field(min_length=1)
    """Per problem id, the step prefixes to continue, each its steps root first, as the verifiers
    split a solution (stripped, no blank line inside)."""

    @model_validator(mode="after")
    def _steps_as_split(self) -> RolloutParams:
        for problem_id, prefixes in self.prefixes.items():
            where = f"prefixes[{problem_id!r}]"
            if not prefixes:
                raise ValueError(f"{where}: give at least one prefix")
            if len(set(prefixes)) != len(prefixes):
                raise ValueError(f"{where}: duplicate prefixes")
            for i, steps in enumerate(prefixes):
                if not steps:
                    raise ValueError(f"{where}[{i}]: a prefix needs at least one step")
                # Labels key a prefix by its steps as `verifiers.base.split_steps` gives them
                # (split on blank lines, stripped): any other step could never meet its row.
                bad = [s for s in steps if not s or s != s.strip() or "\n\n" in s]
                if bad:
                    raise ValueError(f"{where}[{i}]: every step must be non-empty, stripped and without a blank line, got {bad[0]!r}")
        return self

    def judged_budgets(self, n: int, *, every_power_of_two: bool = False) -> list[int]:
        """None: a problem's roll-outs continue different prefixes, no selection among them is judged."""
        return []

    def estimate(self, n: int, sampling: Sampling) -> tuple[int, int]:
        """N whole continuations of each prefix of the problem with the most prefixes."""
        most = max(len(p) for p in self.prefixes.values())
        return n * most, n * most * sampling.max_tokens

    def shown_params(self) -> dict[str, Any]:
        """The prefixes counted, not shown."""
        return {"n_prefixes": sum(len(p) for p in self.prefixes.values())}


ALL_PARAMS: tuple[type[StrategyParams], ...] = (
    MajorityParams, BestOfNParams, BeamSearchParams, DVTSParams, SelfRefineParams, ParticleFilteringParams, AdaptiveParams,
    RolloutParams,
)  # fmt: skip
"""Every strategy's parameter model; `spec.StrategySpec` is their union, picked by `name`."""
PARAMS_BY_NAME: dict[str, type[StrategyParams]] = {p.model_fields["name"].default: p for p in ALL_PARAMS}
STRATEGY_NAMES: tuple[str, ...] = tuple(PARAMS_BY_NAME)
PREFIX_SHARING = frozenset(name for name, p in PARAMS_BY_NAME.items() if p.shares_prefix)
"""Names of the strategies whose budgets share a run (`StrategyParams.shares_prefix`)."""
ANSWERING = frozenset(name for name, p in PARAMS_BY_NAME.items() if p.selects_answers)
"""Names of the strategies whose cells answer problems (`StrategyParams.selects_answers`): all but `rollout`."""
