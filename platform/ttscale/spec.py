"""Typed, frozen configuration: sampling, strategies, datasets, one cell, a whole sweep.

Every knob is a field with its docstring beneath it; defaults follow the reference work
(Hugging Face search-and-learn recipes, Dec 2024: T=0.8, top_p=1, M=4, 40 iterations, `last`
aggregation). Validators only check: a bad value is rejected with the field path, never
clamped. A cell's id is a hash of its canonical JSON, so the same cell submitted twice is
recognised as the same work.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, ValidationError, model_validator

from ttscale import field_errors
from ttscale.errors import SpecError
from ttscale.field_errors import one_line
from ttscale.files import MAX_SPEC_BYTES, read_text
from ttscale.fidelity import Fidelity, rules
from ttscale.policy import load_policy, parse_policy
from ttscale.strategy_params import ALL_PARAMS, PARAMS_BY_NAME, STRATEGY_NAMES, Aggregation, Config, StrategyParams


MAX_N = 4096
"""Largest budget N of a cell (`CellSpec.n`)."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Seeds are stored as BIGINT."""


def canonical_json(model: BaseModel) -> str:
    """The one canonical JSON of a config (sorted keys, no spaces): what ids and hashes are of."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class SamplingParams(Config):
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    """Sampling temperature T (reference: 0.8). 0 is greedy decoding, the repeatable case."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass (reference: 1.0)."""
    max_tokens: int = Field(512, ge=1, le=32768)
    """Token limit of one whole solution (Best-of-N, majority, self-refinement rounds, a search's final roll-out)."""
    step_max_tokens: int = Field(128, ge=1, le=8192)
    """Token limit of one reasoning step in beam search / DVTS."""


StrategySpec = Annotated[Union[ALL_PARAMS], Field(discriminator="name")]  # noqa: UP007 - a runtime tuple of classes
"""Any strategy's parameters, picked by `name` (`ttscale.strategy_params`)."""


class DatasetSpec(Config):
    name: str
    """Registered dataset: `math500`, `gsm8k`, `arith`, or `jsonl` (with `path`)."""
    path: str | None = None
    """JSONL file for `jsonl` datasets (fields `problem`/`question` and `answer`)."""
    limit: int | None = Field(None, ge=1)
    """Use only the first `limit` problems (after the level filter)."""
    levels: tuple[int, ...] | None = None
    """Keep only these difficulty levels (MATH levels 1-5; `arith` levels 1-5)."""
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    """Generator seed for synthetic datasets (`arith`)."""

    @model_validator(mode="after")
    def _path_only_for_jsonl(self) -> DatasetSpec:
        if self.name == "jsonl" and not self.path:
            raise ValueError("a `jsonl` dataset needs `path`")
        if self.levels is not None and any(not 1 <= lv <= 5 for lv in self.levels):
            raise ValueError(f"levels must be within 1-5, got {list(self.levels)}")
        return self

    @property
    def label(self) -> str:
        return self.path if self.name == "jsonl" and self.path else self.name


class CellSpec(Config):
    """One experiment cell: model × verifier × strategy × budget × dataset × seed."""

    model: str
    """Policy model: a registered name (`smollm2-135m`), an HF model id or a local path."""
    verifier: str | None = None
    """Step scorer: `arithmetic`, `arith_chain`, `self`, `rlhflow_prm`, `qwen_prm`, `learned:PATH[@FINGERPRINT]`
    (a head trained by `ttscale learn train`), ...; None for majority/self_refine."""
    aggregation: Aggregation = "last"
    """How step scores become one candidate score (reference: `last`)."""
    strategy: StrategySpec
    """The strategy and its parameters, picked by `name`."""
    n: int = Field(ge=1, le=MAX_N)
    """N: samples for Best-of-N/majority, generations per step for beam search/DVTS, chains for
    self_refine, particles for particle_filtering."""
    dataset: DatasetSpec
    """The problems: a registered dataset or a JSONL file, optionally filtered by `levels` and `limit`."""
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    """Engine seed. Sampling on vLLM-CPU is not repeatable even with a seed; greedy decoding is."""
    sampling: SamplingParams = SamplingParams()
    """Temperature, top-p and token limits of every generation of the cell."""
    fidelity: Fidelity = "ttscale"
    """`search-and-learn` reproduces the reference's search and scoring exactly; `ttscale` makes
    the choices docs/fidelity.md lists. Part of the cell's id: the profiles never share results."""

    @model_validator(mode="after")
    def _check_budget(self) -> CellSpec:
        error = self.strategy.budget_error(self.n)
        if error:
            raise ValueError(f"n: {error}")
        if self.strategy.needs_verifier and self.verifier is None:
            raise ValueError(f"verifier: strategy {self.strategy.name} needs a verifier")
        if not self.strategy.selects_answers and self.verifier is not None:
            raise ValueError(f"verifier: strategy {self.strategy.name} scores nothing, got {self.verifier!r}")
        error = policy_error(self.strategy, "strategy.policy", model=self.model, verifier=self.verifier, aggregation=self.aggregation, n=self.n)
        if error:
            raise ValueError(error)
        return self

    def canonical_json(self) -> str:
        return canonical_json(self)

    def judged_budgets(self, n: int | None = None) -> list[int]:
        """The budgets up to `n` (default: the cell's N) whose verdicts this cell stores: its
        strategy's (`StrategyParams.judged_budgets`), under its fidelity profile."""
        every = rules(self.fidelity).dvts_budgets_below_m
        return self.strategy.judged_budgets(self.n if n is None else n, every_power_of_two=every)

    @property
    def cell_id(self) -> str:
        """Stable id: hash of the canonical JSON of every field."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


DEFAULT_MAX_CELLS = 10_000
HARD_MAX_CELLS = 1_000_000


class SweepSpec(Config):
    """A grid of cells (YAML). Lists are crossed; strategies carry their own parameters."""

    name: str = Field(min_length=1, max_length=200)
    """Human name of the sweep; shown on the dashboard."""
    models: list[str] = Field(min_length=1)
    """Policy models: registered names (`ttscale ls models`), HF ids or local paths."""
    verifiers: list[str | None] = Field(default_factory=lambda: [None])
    """Verifiers crossed with verifier-using strategies; `null` runs majority/self_refine only.
    `learned:PATH@FINGERPRINT` names a trained model folder and pins its contents (docs/learning.md)."""
    aggregation: Aggregation = "last"
    """How a candidate's step scores become one score: `last` (reference default), `min`, `prod`."""
    strategies: list[StrategySpec] = Field(min_length=1)
    """Strategies, each an object picked by `name` with its own parameters (tables below)."""
    budgets: list[int] = Field(min_length=1)
    """Values of n (e.g. [1, 4, 16, 64, 256]), each from 1 to 4096 (`MAX_N`)."""
    datasets: list[DatasetSpec] = Field(min_length=1)
    """Datasets, each with optional `limit` and `levels` (table below)."""
    seeds: list[int] = Field(default_factory=lambda: [0])
    """Engine seeds; each seed is its own cell (sampling on CPU is not repeatable even so)."""
    sampling: SamplingParams = SamplingParams()
    """Sampling parameters shared by every cell (table below)."""
    shard_size: int = Field(50, ge=1, le=100000)
    """Problems per shard: the unit of retry and of one transaction in the store."""
    share_generations: bool = True
    """Serve smaller budgets of majority/best_of_n/dvts from the largest budget's candidates."""
    run_on: str = "local"
    """`local` (this process) or the name of a Prefect work pool."""
    retries: int = Field(2, ge=0, le=20)
    """Times a failed shard is retried before the cell is marked failed."""
    fidelity: Fidelity = "ttscale"
    """Search semantics of every cell: `ttscale` (default) or `search-and-learn` (docs/fidelity.md)."""
    max_cells: int = Field(DEFAULT_MAX_CELLS, ge=1, le=HARD_MAX_CELLS)
    """The most cells the grid may expand to (a typo'd list of seeds should not plan a million
    cells); raise it for a grid that really is larger, up to 1,000,000."""

    def grid_size(self) -> int:
        """An upper bound of the cells the grid expands to, without expanding it."""
        return len(self.models) * len(self.strategies) * len(self.datasets) * len(self.seeds) * len(self.budgets) * max(1, len(self.verifiers))

    @model_validator(mode="after")
    def _check_grid(self) -> SweepSpec:
        if (size := self.grid_size()) > self.max_cells:
            raise ValueError(
                f"the grid has up to {size:,} cells, more than max_cells={self.max_cells:,}; "
                "set max_cells in the spec if you mean it"
            )
        if any(n < 1 for n in self.budgets):
            bad = [n for n in self.budgets if n < 1]
            raise ValueError(f"budgets: every n must be >= 1, got {bad[0]}")
        if any(n > MAX_N for n in self.budgets):
            bad = [n for n in self.budgets if n > MAX_N]
            raise ValueError(f"budgets: every n must be <= {MAX_N}, got {bad[0]}")
        if any(not INT64_MIN <= s <= INT64_MAX for s in self.seeds):
            bad = [s for s in self.seeds if not INT64_MIN <= s <= INT64_MAX]
            raise ValueError(f"seeds: every seed must fit in 64 bits, got {bad[0]}")
        for field, values in (("budgets", self.budgets), ("models", self.models), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{field}: duplicate entries {values}")
        if len({s.model_dump_json() for s in self.strategies}) != len(self.strategies):
            raise ValueError("strategies: duplicate entries")
        if len({d.model_dump_json() for d in self.datasets}) != len(self.datasets):
            raise ValueError("datasets: duplicate entries")
        for i, strat in enumerate(self.strategies):
            if not strat.selects_answers:
                raise ValueError(f"strategies[{i}]: {strat.name} cells are made by `ttscale learn dataset --rollouts`, not by a sweep")
            m = getattr(strat, "beam_width", None)
            bad = [n for n in self.budgets if strat.budget_error(n)]
            if bad and m is not None and bad[0] % m:
                raise ValueError(f"strategies[{i}].beam_width: every budget must be a multiple of {m}, got n={bad[0]}")
            if bad:
                raise ValueError(f"strategies[{i}]: budget {bad[0]}: {strat.budget_error(bad[0])}")
            for model, verifier, n in itertools.product(self.models, [v for v in self.verifiers if v is not None], self.budgets):
                error = policy_error(strat, f"strategies[{i}].policy", model=model, verifier=verifier, aggregation=self.aggregation, n=n)
                if error:
                    raise ValueError(error)
            if strat.needs_verifier and all(v is None for v in self.verifiers):
                raise ValueError(f"strategies[{i}]: {strat.name} needs a verifier; add one to `verifiers`")
        return self

    def cells(self) -> list[CellSpec]:
        """The expanded grid, in a stable order. Verifier-free strategies appear once per grid point."""
        out: list[CellSpec] = []
        for model, strat, dataset, seed, n in itertools.product(
            self.models, self.strategies, self.datasets, self.seeds, sorted(self.budgets)
        ):
            if strat.needs_verifier:
                verifiers = [v for v in self.verifiers if v is not None]
            else:
                # majority/self_refine use a verifier's scores only for weighted selection if one is given
                verifiers = list(dict.fromkeys(self.verifiers))
            for verifier in verifiers:
                out.append(
                    CellSpec(
                        model=model,
                        verifier=verifier,
                        aggregation=self.aggregation,
                        strategy=strat,
                        n=n,
                        dataset=dataset,
                        seed=seed,
                        sampling=self.sampling,
                        fidelity=self.fidelity,
                    )
                )
        return out

    def generation_source(self, cell: CellSpec) -> CellSpec:
        """The cell whose generations serve `cell`: itself, or the same cell at the largest budget."""
        if not self.share_generations or not cell.strategy.shares_prefix:
            return cell
        return cell.model_copy(update={"n": max(self.budgets)})


def policy_error(strategy: StrategyParams, field: str, *, model: str, verifier: str | None, aggregation: str, n: int) -> str | None:
    """Why a cell cannot apply the policy its strategy carries (`Policy.cell_error`), naming
    `field`; None for a strategy that applies no policy."""
    if not strategy.applies_policy:
        return None
    try:
        policy = parse_policy(strategy.policy, source=field)
    except SpecError as err:
        return str(err)
    error = policy.cell_error(model=model, verifier=verifier, aggregation=aggregation, n=n)
    return f"{field}: {error}" if error else None


def embed_policy(strategy: Any, field: str) -> Any:
    """`strategy` (a spec's mapping) with its policy, where it applies one, read and embedded:
    a path is replaced by the file's validated content, a mapping by its validated form, so the
    cell's id is the policy's content and a worker needs no file. Anything else is left to
    validation to reject."""
    if not isinstance(strategy, dict) or not isinstance(name := strategy.get("name"), str):
        return strategy
    params = PARAMS_BY_NAME.get(name)
    if params is None or not params.applies_policy:
        return strategy
    given = strategy.get("policy")
    if isinstance(given, str):
        return {**strategy, "policy": load_policy(given, what=field).model_dump(mode="json")}
    if isinstance(given, dict):
        return {**strategy, "policy": parse_policy(given, source=field).model_dump(mode="json")}
    return strategy


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: `field.path: message, got value` (`field_errors`), strategy tags dropped."""
    return field_errors.format_validation_error(err, prefix, union_tags=STRATEGY_NAMES)


def as_cell(cell: CellSpec | Mapping | str) -> CellSpec:
    """A CellSpec from itself, its stored canonical JSON or its `model_dump(mode="json")`
    mapping: the one way a cell spec is read back from the store, a flow parameter or a file."""
    if isinstance(cell, CellSpec):
        return cell
    try:
        return CellSpec.model_validate_json(cell) if isinstance(cell, str) else CellSpec.model_validate(cell)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, prefix="cell.")) from None


def parse_sweep(data: Any, source: str = "spec") -> SweepSpec:
    """Validate a loaded YAML/JSON mapping into a SweepSpec or raise SpecError naming the fields.
    A strategy's policy file is read and embedded first (`embed_policy`)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep spec must be a mapping, got {type(data).__name__}")
    if isinstance(strategies := data.get("strategies"), list):
        data = {**data, "strategies": [embed_policy(s, f"strategies[{i}].policy") for i, s in enumerate(strategies)]}
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from None


def _unique_keys_loader() -> type:
    """yaml's SafeLoader, refusing a mapping that repeats a key (plain YAML keeps the last one,
    so `budgets: [4]` further down would silently replace `budgets: [2, 4, 8]`)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges; explicit keys may override those
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: the base constructor reports it
                    break
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_yaml_text(text: str, source: str = "spec") -> Any:
    """`yaml.safe_load(text)`, or a one-line SpecError naming `source`.

    Safe loading builds only plain data: a tag that would construct a Python object
    (`!!python/object`, `!!python/name`, ...) is refused. Every other way the loader can fail on
    bad input — a malformed `!!timestamp` or `!!float` (ValueError, AttributeError), nesting
    deep enough to exhaust the recursion limit — is a SpecError too, never a traceback."""
    import yaml

    try:
        loader = _unique_keys_loader()(text)  # a SafeLoader: plain data only
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "python/" in first:
            first += " (YAML is loaded safely: tags that build Python objects are refused)"
        raise SpecError(f"{source}: not valid YAML: {one_line(first)}") from None
    except RecursionError:
        raise SpecError(f"{source}: not valid YAML: nested too deeply") from None
    except Exception as err:  # noqa: BLE001 - the safe loader on bad input: a constructor's ValueError etc.
        raise SpecError(f"{source}: not valid YAML: {type(err).__name__}: {one_line(str(err), 200)}") from None


def parse_sweep_text(text: str, source: str = "spec") -> SweepSpec:
    """Validate the YAML text of a sweep spec into a SweepSpec, or raise SpecError."""
    return parse_sweep(load_yaml_text(text, source), source=source)


def read_sweep_file(path: str) -> tuple[SweepSpec, str]:
    """The validated spec of a file and its text exactly as written (the store keeps it verbatim)."""
    text = read_text(path, "spec", max_bytes=MAX_SPEC_BYTES, error=SpecError)
    return parse_sweep_text(text, source=path), text
