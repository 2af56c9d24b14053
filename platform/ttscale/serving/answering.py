"""Answering requests: each becomes a problem of a cell, searched in batches through the runner.

- `load_answerer`: the policy file's model and verifier loaded once, as a cell's shards load them
  (`planning.check_cell`, `runner.load_cell_runtime`: one engine per process).
- `Answerer.job`: a request's cell — the policy file's model, verifier and aggregation; the
  strategy (`adaptive` applying the policy file, or a fixed one with its parameters); the budget
  N; the sampling — and its problem. Every check is made here, so a bad request is refused
  before it queues; requests whose cells are equal (`cell_id`) can share one search.
- `Answerer.answer`: the jobs of one cell as one batched search (`runner.search_without_gold`);
  each answer selected among its candidates (`selection.select`) and its budget counted
  (`compute`); with a store, the batch stored like a shard (`runner.store_outcome`).

What a served request is in the store (`ttscale serve --store`): a cell of dataset `served`
(outside any sweep; its spec holds the strategy, the policy, the budget and the sampling), and
per request a problem of that dataset whose id is the completion id (`chatcmpl-...`), its
text the user message and its answer empty (unknown); the problem's run (tokens, FLOPs), every
candidate (text, extracted answer, equivalence class, scores; `correct` null) and every node of
its search tree (adaptive's probes included). No verdicts: there is no gold answer to judge.
The selection method and difficulty bin of a response are not stored (the bin follows from the
probes' stored scores and the policy in the cell's spec).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ttscale.compute import charged_flops, computed_flops, flops
from ttscale.errors import SpecError, TtscaleError
from ttscale.fidelity import Fidelity
from ttscale.planning import check_cell
from ttscale.policy import Policy as PolicyFile
from ttscale.policy import Selection
from ttscale.runner import CellRuntime, load_cell_runtime, search_without_gold, store_outcome
from ttscale.selection import select
from ttscale.serving.protocol import (
    AssistantMessage, Budget, ChatCompletion, ChatRequest, Choice, RequestError, StoredAs, TtscaleAnswer, TtscaleOptions, Usage,
)  # fmt: skip
from ttscale.settings import Settings
from ttscale.spec import CellSpec, DatasetSpec, SamplingParams, format_validation_error
from ttscale.store import Engine
from ttscale.strategies import STRATEGIES, strategy_names
from ttscale.strategy_params import PARAMS_BY_NAME, STRATEGY_NAMES, AdaptiveParams, StrategyParams
from ttscale.tree import Problem, ProblemResult, ShardOutcome

logger = logging.getLogger(__name__)

SERVED_DATASET = "served"
"""The dataset name of served requests' cells and problems in the store."""
ADAPTIVE: str = AdaptiveParams.model_fields["name"].default


@dataclass(frozen=True)
class ServeOptions:
    """What a request gets unless it says otherwise, and the limits it must stay within."""

    n: int
    """The default budget N: one of the policy's budgets."""
    probes: int = 4
    """k of `adaptive`: probe samples per problem that predict its difficulty bin."""
    sampling: SamplingParams = SamplingParams()
    """Default sampling; a request may change temperature and top_p, and lower max_tokens."""
    max_n: int = 64
    """The largest budget a request may ask of a fixed strategy (adaptive: the policy's budgets)."""
    seed: int = 0
    """The engine's seed (part of every served cell's spec)."""
    fidelity: Fidelity = "ttscale"


@dataclass(frozen=True)
class Job:
    """One request, ready to search: its cell (the batching key) and its problem."""

    id: str
    """The completion id (`chatcmpl-...`), also the problem's id in the store."""
    cell: CellSpec
    problem: Problem
    selection: Selection | None
    """The request's selection method; None: the default (`TtscaleOptions.selection`)."""
    created: int
    """Unix time the request arrived."""


def default_selection(strategy: StrategyParams) -> Selection:
    """How a fixed strategy's answer is picked when the request does not say: by vote for
    majority, by verifier-weighted vote (Snell et al. 2024's weighted Best-of-N) otherwise."""
    return "majority" if strategy.name == "majority" else "weighted"


class Answerer:
    """Turns requests into jobs, and a batch of one cell's jobs into responses."""

    def __init__(self, policy: PolicyFile, runtime: CellRuntime, options: ServeOptions, engine: Engine | None = None) -> None:
        """`runtime`: the policy model, verifier and prompts every search runs with (those of
        the policy file); `engine`: the store to write every batch to, or None."""
        self.policy = policy
        self.runtime = runtime
        self.options = options
        self.engine = engine
        self._policy_data = policy.model_dump(mode="json")
        self.started = int(time.time())
        strategy_names()  # every strategy registered, for unknown-name messages

    @property
    def model(self) -> str:
        return self.policy.model

    def cell(self, strategy: StrategyParams, n: int, sampling: SamplingParams) -> CellSpec:
        """The cell of a request of `strategy` at budget `n` (ValidationError if it cannot run)."""
        return served_cell(self.policy, self.options, strategy, n, sampling)

    # ---- a request becomes a job -----------------------------------------------------------------

    def job(self, request: ChatRequest, problem_text: str) -> Job:
        """The request's job; RequestError naming the field that cannot be served."""
        if request.model is not None and request.model != self.model:
            raise RequestError(
                f"model: this server serves {self.model!r} (GET /v1/models), got {request.model!r}",
                status=404, code="model_not_found", param="model",
            )  # fmt: skip
        opts = request.ttscale or TtscaleOptions()
        strategy = self._strategy(opts)
        n = self.options.n if opts.n is None else opts.n
        if strategy.applies_policy and n not in self.policy.budgets:
            raise RequestError(f"ttscale.n: the policy has choices at n in {list(self.policy.budgets)}, got {n}", param="ttscale.n")
        if not strategy.applies_policy and n > self.options.max_n:
            raise RequestError(f"ttscale.n: at most {self.options.max_n} on this server (ttscale serve --max-n), got {n}", param="ttscale.n")
        try:
            cell = self.cell(strategy, n, self._sampling(request))
        except ValidationError as err:
            field, _, rest = format_validation_error(err).splitlines()[0].partition(": ")
            where = "ttscale.n" if field == "n" else f"ttscale.params.{field.removeprefix('strategy.')}"
            raise RequestError(f"{where}: {rest}", param=where) from None
        job_id = f"chatcmpl-{uuid.uuid4().hex}"
        problem = Problem(SERVED_DATASET, job_id, problem_text, "")
        return Job(job_id, cell, problem, opts.selection, int(time.time()))

    def _strategy(self, opts: TtscaleOptions) -> StrategyParams:
        name = opts.strategy or ADAPTIVE
        if name not in STRATEGY_NAMES:
            raise RequestError(STRATEGIES.unknown_message(name, "ttscale.strategy"), code="unknown_strategy", param="ttscale.strategy")
        if not PARAMS_BY_NAME[name].selects_answers:
            raise RequestError(f"ttscale.strategy: {name} answers no problem (it labels stored steps)", param="ttscale.strategy")
        params: dict[str, Any] = dict(opts.params)
        for key in ("name", "policy"):
            if key in params:
                why = "the strategy is ttscale.strategy" if key == "name" else "the server applies its own policy file (ttscale serve --policy)"
                raise RequestError(f"ttscale.params.{key}: {why}", param=f"ttscale.params.{key}")
        if name == ADAPTIVE:
            params = {"probes": self.options.probes, **params, "policy": self._policy_data}  # the probes a request may change
        try:
            return PARAMS_BY_NAME[name].model_validate({"name": name, **params}, strict=True)
        except ValidationError as err:
            lines = format_validation_error(err, prefix="ttscale.params.").splitlines()
            raise RequestError(lines[0], param=lines[0].partition(":")[0]) from None

    def _sampling(self, request: ChatRequest) -> SamplingParams:
        default = self.options.sampling
        max_tokens = request.max_tokens or request.max_completion_tokens
        if max_tokens is not None and max_tokens > default.max_tokens:
            raise RequestError(
                f"max_tokens: at most {default.max_tokens} on this server (ttscale serve --max-tokens), got {max_tokens}", param="max_tokens"
            )
        given = {"temperature": request.temperature, "top_p": request.top_p, "max_tokens": max_tokens}
        return SamplingParams.model_validate({**default.model_dump(), **{k: v for k, v in given.items() if v is not None}})

    # ---- a batch of jobs becomes responses -------------------------------------------------------

    def answer(self, jobs: Sequence[Job]) -> list[ChatCompletion]:
        """One batched search for `jobs` (all of one cell), each answer selected; stored with a store."""
        cell = jobs[0].cell
        if any(j.cell.cell_id != cell.cell_id for j in jobs):
            raise ValueError("answer: a batch holds the jobs of one cell")
        outcome = search_without_gold(cell, [j.problem for j in jobs], self.runtime)
        stored, store_error = self._store(cell, outcome)
        return [
            self._completion(job, result, outcome, len(jobs), stored, store_error)
            for job, result in zip(jobs, outcome.results, strict=True)
        ]

    def _store(self, cell: CellSpec, outcome: ShardOutcome) -> tuple[bool, str | None]:
        if self.engine is None:
            return False, None
        try:
            store_outcome(self.engine, cell, outcome)
        except TtscaleError as err:  # the answers stand; each response says they were not stored
            logger.warning("served requests not stored cell=%s requests=%d: %s", cell.cell_id, len(outcome.problems), err)
            return False, str(err)
        return True, None

    def _completion(
        self, job: Job, result: ProblemResult, outcome: ShardOutcome, batch_size: int, stored: bool, store_error: str | None
    ) -> ChatCompletion:
        cell = job.cell
        if cell.strategy.applies_policy:
            assert result.predicted_bin is not None, "adaptive records each problem's bin"
            choice = self.policy.choice(result.predicted_bin, cell.n)
            chosen, default, aggregation = choice.strategy, choice.selection, choice.aggregation
        else:
            chosen, default, aggregation = cell.strategy, default_selection(cell.strategy), cell.aggregation
        selection = job.selection or default
        candidates = result.candidates
        picked = select([c.answer_class for c in candidates], [c.score for c in candidates], selection)
        best = candidates[picked] if picked is not None else None
        generated = result.n_generated_tokens or 0
        policy_flops = charged_flops(outcome.policy_params, generated) or 0
        verifier_flops = flops(outcome.verifier_params, result.n_verifier_tokens)
        budget = Budget(
            n_generations=len(result.nodes), n_policy_calls=result.n_policy_calls, n_prompt_tokens=result.n_prompt_tokens,
            n_prompt_tokens_computed=result.n_prompt_tokens_computed, n_generated_tokens=generated,
            n_verifier_tokens=result.n_verifier_tokens, policy_flops=policy_flops,
            policy_flops_computed=computed_flops(outcome.policy_params, result.n_prompt_tokens_computed, generated),
            verifier_flops=verifier_flops, flops=policy_flops + verifier_flops,
        )  # fmt: skip
        info = TtscaleAnswer(
            strategy=cell.strategy.name, chosen=chosen.model_dump(mode="json"), difficulty_bin=result.predicted_bin, n=cell.n,
            verifier=cell.verifier, aggregation=aggregation, selection=selection, answer=best.answer if best else None,
            score=best.score if best else None, n_candidates=len(candidates), budget=budget, policy_id=self.policy.policy_id,
            batch_size=batch_size, stored=StoredAs(cell_id=cell.cell_id, problem_id=job.id) if stored else None, store_error=store_error,
        )  # fmt: skip
        return ChatCompletion(
            id=job.id,
            created=job.created,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content=best.text if best else ""),
                            finish_reason="length" if best is not None and best.finish_reason == "length" else "stop")],  # fmt: skip
            usage=Usage(prompt_tokens=result.n_prompt_tokens, completion_tokens=generated, total_tokens=result.n_prompt_tokens + generated),
            ttscale=info,
        )

    def models_body(self) -> dict[str, Any]:
        """`GET /v1/models`: the one served model, with what the server applies to it."""
        predictor = self.policy.predictor
        info = {
            "policy_id": self.policy.policy_id, "budgets": list(self.policy.budgets), "n": self.options.n, "max_n": self.options.max_n,
            "verifier": predictor.verifier, "aggregation": predictor.aggregation, "probes": self.options.probes,
            "max_tokens": self.options.sampling.max_tokens, "strategies": [s for s in STRATEGY_NAMES if PARAMS_BY_NAME[s].selects_answers],
        }  # fmt: skip
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": self.started, "owned_by": "ttscale", "ttscale": info}]}


def check_options(policy: PolicyFile, options: ServeOptions) -> None:
    """SpecError naming the `ttscale serve` option that the policy cannot serve with."""
    if options.n not in policy.budgets:
        raise SpecError(f"--n: the policy has choices at n in {list(policy.budgets)}, got {options.n}")


def served_cell(policy: PolicyFile, options: ServeOptions, strategy: StrategyParams, n: int, sampling: SamplingParams) -> CellSpec:
    """The cell a served request runs: the policy file's model, verifier and aggregation, the
    request's strategy, budget and sampling, dataset `served` (ValidationError if it cannot run)."""
    predictor = policy.predictor
    return CellSpec(
        model=policy.model, verifier=predictor.verifier, aggregation=predictor.aggregation, strategy=strategy, n=n,
        dataset=DatasetSpec(name=SERVED_DATASET), seed=options.seed, sampling=sampling, fidelity=options.fidelity,
    )  # fmt: skip


def load_answerer(policy: PolicyFile, options: ServeOptions, settings: Settings, engine: Engine | None = None) -> Answerer:
    """An Answerer for `policy`: its model and verifier checked, then loaded (the engine starts:
    tens of seconds on a CPU). SpecError/BackendError naming what is wrong."""
    check_options(policy, options)
    try:
        adaptive = AdaptiveParams(policy=policy.model_dump(mode="json"), probes=options.probes)
        cell = served_cell(policy, options, adaptive, options.n, options.sampling)
    except ValidationError as err:
        raise SpecError(f"policy: cannot be served: {format_validation_error(err).splitlines()[0]}") from None
    runtime = load_cell_runtime(check_cell(cell, settings), settings)
    return Answerer(policy, runtime, options, engine)
