"""A compute-optimal policy as a file: which strategy to run on a new problem at a budget n.

`ttscale report SWEEP --policy policy.json` writes what the sweep's frontier chose
(`analysis.learned_policy.learn_policy`); the `adaptive` strategy applies it problem by problem
(the spec reader embeds the file in the cell), and a server loads it the same way:

    policy = load_policy("policy.json")          # validated; a bad file is one SpecError line
    b = policy.predict_bin(mean_probe_score)     # difficulty bin from the verifier's mean score
    choice = policy.choice(b, n)                 # strategy params, verifier, aggregation, selection

A policy has two parts (Snell et al. 2024, arXiv 2408.03314, §3.2: a compute-optimal strategy
conditioned on predicted difficulty):
- `predictor`: how a new problem's bin is predicted without its answer — the mean of the
  verifier's aggregated score over samples of it, the `predicted` bins of `analysis.difficulty`,
  with the score thresholds between bins learned on the sweep;
- `choices`: per bin and budget n, the option the sweep's frontier found best on all of that
  bin's problems (strategy and its parameters, verifier, aggregation, selection method).

Versioned (`version`), validated on load, with the sweep and code version it came from. The
models are pure; `load_policy` and `save_policy` are the only functions that touch a file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, model_validator

from ttscale.errors import SpecError
from ttscale.field_errors import format_validation_error, one_line
from ttscale.files import read_text
from ttscale.strategy_params import ALL_PARAMS, STRATEGY_NAMES, Aggregation, Config

POLICY_VERSION = 1
"""The format `save_policy` writes; `load_policy` refuses any other."""
MAX_POLICY_BYTES = 4 << 20
"""A policy is a few kilobytes; megabytes of JSON are a mistake."""
Selection = Literal["naive", "weighted", "majority"]
"""The selection methods that pick an answer without the gold one (`analysis.verdicts.SELECTORS`)."""
ChoiceStrategy = Annotated[
    Union[tuple(p for p in ALL_PARAMS if p.selects_answers and not p.applies_policy)],  # noqa: UP007 - a runtime tuple of classes
    Field(discriminator="name"),
]
"""The parameters of any strategy a policy may choose (one that answers problems and applies no policy itself)."""


class ScoreBin(Config):
    """One difficulty bin and the lowest predicted score that falls in it."""

    bin: int = Field(ge=1)
    """Difficulty bin, 1 the easiest (the highest mean verifier score), as `analysis.difficulty`."""
    min_score: float | None
    """A problem whose predicted score is at least this (and below every easier bin's) falls in this
    bin: the midpoint between this bin's lowest and the next harder bin's highest score on the
    sweep. Null for the hardest bin, which takes every lower score."""


class DifficultyPredictor(Config):
    """How a new problem's difficulty bin is predicted, with no gold answer."""

    method: Literal["mean_verifier_score"] = "mean_verifier_score"
    """The mean of the verifier's aggregated score over sampled solutions of the problem."""
    verifier: str
    """The verifier whose scores the thresholds were learned from; probes must be scored by it."""
    aggregation: Aggregation
    """How each sample's step scores became its score on the sweep."""
    n_reference_samples: int = Field(ge=1)
    """Samples per problem the sweep's scores were averaged over (the largest independent-sample
    cell); a probe of fewer samples predicts the same mean with more noise."""
    bins: tuple[ScoreBin, ...] = Field(min_length=1)
    """The bins, easiest first, with strictly decreasing `min_score`; the last one's is null."""

    @model_validator(mode="after")
    def _thresholds_descend(self) -> DifficultyPredictor:
        numbers = [b.bin for b in self.bins]
        if numbers != sorted(set(numbers)):
            raise ValueError(f"bins: bin numbers must increase, got {numbers}")
        if self.bins[-1].min_score is not None or any(b.min_score is None for b in self.bins[:-1]):
            raise ValueError("bins: every bin but the last (hardest) needs a min_score; the last has none")
        scores = [b.min_score for b in self.bins[:-1]]
        if any(hi <= lo for hi, lo in zip(scores, scores[1:], strict=False)):
            raise ValueError(f"bins: min_score must decrease from the easiest bin to the hardest, got {scores}")
        return self

    def predict_bin(self, score: float) -> int:
        """The easiest bin whose `min_score` the predicted `score` reaches (the hardest bin if none)."""
        for b in self.bins[:-1]:
            assert b.min_score is not None
            if score >= b.min_score:
                return b.bin
        return self.bins[-1].bin


class PolicyChoice(Config):
    """What to run on a problem of one bin at one budget: one option of the frontier."""

    bin: int = Field(ge=1)
    """The difficulty bin (`DifficultyPredictor.bins`)."""
    n: int = Field(ge=1)
    """The budget N this choice is for (as a cell's `n`)."""
    strategy: ChoiceStrategy
    """The strategy and its parameters, as in a sweep spec."""
    verifier: str | None
    """The verifier the option ran with (None: none, as majority without one)."""
    aggregation: Aggregation
    """How the option aggregated step scores."""
    selection: Selection
    """How the option picked its answer among the candidates."""
    accuracy: float = Field(ge=0.0, le=1.0)
    """Its accuracy on the sweep's problems of this bin (in-sample: the frontier's two-fold
    accuracy is the honest estimate of choosing per bin)."""
    n_problems: int = Field(ge=0)
    """The sweep's problems in this bin."""
    flops_per_problem: float | None = None
    """Its FLOPs per problem on the sweep (charged), where known."""


class Policy(Config):
    """A compute-optimal policy: a difficulty predictor and a choice per bin and budget."""

    version: Literal[1]
    """The file format (`POLICY_VERSION`)."""
    model: str
    """The policy model it was learned for: difficulty is relative to a model."""
    dataset: str
    """The dataset it was learned on."""
    sweep_id: str | None = None
    """The sweep it came from (None: a single cell)."""
    sweep_name: str | None = None
    """The sweep's name."""
    sweep_code_version: str | None = None
    """The code version that registered the sweep (`store.provenance.code_version`)."""
    code_version: str
    """The code version that wrote this file."""
    predictor: DifficultyPredictor
    """How a problem's difficulty bin is predicted."""
    choices: tuple[PolicyChoice, ...] = Field(min_length=1)
    """One per (bin, n): every bin of the predictor at every budget."""

    @model_validator(mode="after")
    def _one_choice_per_bin_and_budget(self) -> Policy:
        seen: set[tuple[int, int]] = set()
        for i, c in enumerate(self.choices):
            if (c.bin, c.n) in seen:
                raise ValueError(f"choices[{i}]: a second choice for bin {c.bin} at n={c.n}")
            seen.add((c.bin, c.n))
        bins = {b.bin for b in self.predictor.bins}
        for i, c in enumerate(self.choices):
            if c.bin not in bins:
                raise ValueError(f"choices[{i}].bin: {c.bin} is not a bin of the predictor ({sorted(bins)})")
        missing = sorted((b, n) for b in bins for n in self.budgets if (b, n) not in seen)
        if missing:
            raise ValueError(f"choices: no choice for bin {missing[0][0]} at n={missing[0][1]}; every bin needs one at every budget")
        return self

    @property
    def budgets(self) -> tuple[int, ...]:
        """The budgets n the policy has choices for, ascending."""
        return tuple(sorted({c.n for c in self.choices}))

    @property
    def policy_id(self) -> str:
        """12 hex of the sha256 of its canonical JSON: what labels and trackers show for it."""
        return hashlib.sha256(canonical(self).encode()).hexdigest()[:12]

    def predict_bin(self, score: float) -> int:
        """The bin of a problem whose predicted score (`predictor.method`) is `score`."""
        return self.predictor.predict_bin(score)

    def choice(self, bin: int, n: int) -> PolicyChoice:  # noqa: A002 - the policy's own word
        """The choice for `bin` at budget `n`; SpecError if the policy has none."""
        for c in self.choices:
            if c.bin == bin and c.n == n:
                return c
        raise SpecError(f"policy: no choice for bin {bin} at n={n}; budgets: {list(self.budgets)}")

    def cell_error(self, *, model: str, verifier: str | None, aggregation: str, n: int) -> str | None:
        """Why a cell (model, verifier, aggregation, n) cannot apply this policy, or None: it must
        run the model the policy was learned for, score probes with the predictor's verifier and
        aggregation, at a budget the policy has, and every choice must run with that verifier."""
        if model != self.model:
            return f"learned for model {self.model!r}, the cell runs {model!r}"
        if verifier != self.predictor.verifier or aggregation != self.predictor.aggregation:
            return (f"predicts difficulty from {self.predictor.verifier}/{self.predictor.aggregation} scores, "
                    f"the cell scores with {verifier}/{aggregation}")  # fmt: skip
        if n not in self.budgets:
            return f"has no choices at n={n}; its budgets are {list(self.budgets)}"
        other = next((c for c in self.choices if c.verifier not in (None, verifier)), None)
        if other is not None:
            return f"chooses verifier {other.verifier!r} for bin {other.bin} at n={other.n}; the cell has {verifier!r} only"
        return None


def canonical(policy: Policy) -> str:
    """The one canonical JSON of a policy (sorted keys, no spaces)."""
    return json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def parse_policy(data: Any, source: str = "policy") -> Policy:
    """A validated Policy from loaded JSON (or a `model_dump`), or a one-line SpecError naming
    `source`, the field and the first problem (and how many more there are)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a policy must be a JSON object, got {type(data).__name__}")
    if data.get("version") != POLICY_VERSION:
        raise SpecError(f"{source}: version: this ttscale reads policy version {POLICY_VERSION}, got {one_line(repr(data.get('version')), 60)}")
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        lines = format_validation_error(err, prefix=f"{source}: ", union_tags=STRATEGY_NAMES).splitlines()
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise SpecError(lines[0] + more) from None


def load_policy(path: str | Path, what: str = "policy") -> Policy:
    """The policy in a JSON file, validated; SpecError naming `what` and the path otherwise."""
    text = read_text(path, what, max_bytes=MAX_POLICY_BYTES, error=SpecError)
    try:
        data = json.loads(text)
    except ValueError as err:
        raise SpecError(f"{what}: {str(path)!r} is not valid JSON: {one_line(str(err), 200)}") from None
    return parse_policy(data, source=f"{what} {str(path)!r}")


def save_policy(policy: Policy, path: str | Path) -> Path:
    """Write the policy as indented JSON (keys in field order) and return the path."""
    out = Path(path)
    out.write_text(json.dumps(policy.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return out
