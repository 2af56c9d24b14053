"""The one way a shard runs: `run_shard` prepares, searches, grades, writes and settles it.

`ttscale run`, `ttscale sweep run`, a team worker and the serving endpoint all reach the search
through this module, never around it:

1. `planning.prepare_cell` checks every name and loads the problems (no model yet);
2. what the store already holds is skipped (`sweep_state.cell_state`; a cancelled cell skips all);
3. `load_cell_runtime` loads the policy (one engine per process), the verifier and the prompts;
4. `search_shard` runs the strategy on all problems in one batched search, grades every
   candidate and judges the verdicts (`analysis.shard_verdicts`, the same rules as reports);
5. the shard is written in one idempotent transaction, retried while the store is down;
6. the cell is marked done once every problem is stored, and the sweep settled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace


from ttscale.store import Engine
from ttscale import store, sweep_state
from ttscale.analysis.verdicts import METHODS, shard_verdicts
from ttscale.backends import load_policy, release_engines
from ttscale.backends.base import Policy
from ttscale.errors import SpecError
from ttscale.fidelity import rules
from ttscale.grading import extract_answer, group_equivalent, is_correct, parse_gold
from ttscale.planning import PreparedCell, prepare_cell
from ttscale.prompting import PromptBuilder
from ttscale.scheduling import Scheduling, search_per_problem
from ttscale.settings import Settings
from ttscale.spec import CellSpec, as_cell
from ttscale.strategies import run_strategy
from ttscale.strategies.common import SearchContext
from ttscale.tree import Problem, ProblemResult, ShardOutcome, Verdict, check_tree
from ttscale.verifiers import Verifier, load_verifier

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CellRuntime:
    """What a cell's shards run with: the prepared cell, the policy, the verifier and prompts."""

    prepared: PreparedCell
    policy: Policy
    verifier: Verifier | None
    prompts: PromptBuilder


def load_cell_runtime(prepared: PreparedCell, settings: Settings) -> CellRuntime:
    """Load the policy (one engine per process: `backends.load_policy` caches it), the verifier
    and the prompt builder of a prepared cell."""
    cell, info = prepared.cell, prepared.model_info
    policy = load_policy(info, settings, seed=cell.seed)
    verifier = load_verifier(cell.verifier, policy, settings) if cell.verifier else None
    prompts = PromptBuilder(chat=policy.chat_prompt, format=info.prompt_format, system=info.system_prompt)
    return CellRuntime(prepared, policy, verifier, prompts)


def release_policies() -> None:
    """Stop the policy engines this process holds (`backends.release_engines`): every entry
    point that may have loaded one calls this when its work is done."""
    release_engines()


# ---- the search itself: pure, on whatever policy and verifier it is given -------------------------


def grade(problem: Problem, result: ProblemResult) -> ProblemResult:
    """Fill in each candidate's extracted answer, correctness and equivalence class."""
    gold = parse_gold(problem.answer)
    extracted = [extract_answer(c.text) for c in result.candidates]
    classes = group_equivalent([a for a, _ in extracted])
    result.candidates = [
        replace(c, answer=a, answer_method=m, correct=is_correct(a, gold), answer_class=k)
        for c, (a, m), k in zip(result.candidates, extracted, classes, strict=True)
    ]
    return result


def search_shard(cell: CellSpec, problems: Sequence[Problem], runtime: CellRuntime, progress: Progress | None = None,
                 *, scheduling: Scheduling | None = None) -> ShardOutcome:
    """Run the cell's strategy on `problems`, grade and judge. `scheduling` (`ttscale.scheduling`):
    `barrier`, one batched search over all problems; `per_problem`, each problem on its own over a
    policy that batches concurrent calls; None: `per_problem` where the policy does
    (`batches_concurrent_calls`, the vLLM backend's async engine), else `barrier`."""
    start = time.perf_counter()
    ctx = SearchContext(
        policy=runtime.policy,
        prompts=runtime.prompts,
        sampling=cell.sampling,
        verifier=runtime.verifier,
        aggregation=cell.aggregation,
        seed=cell.seed,
        progress=progress,
        rules=rules(cell.fidelity),
    )
    if scheduling is None:
        scheduling = "per_problem" if getattr(runtime.policy, "batches_concurrent_calls", False) else "barrier"
    logger.info("shard start cell=%s strategy=%s n=%d problems=%d scheduling=%s",
                cell.cell_id, cell.strategy.name, cell.n, len(problems), scheduling)
    if scheduling == "per_problem":
        results = search_per_problem(list(problems), cell.n, cell.strategy, ctx)
    else:
        results = run_strategy(list(problems), cell.n, cell.strategy, ctx)
    for problem, result in zip(problems, results, strict=True):
        check_tree(result)
        grade(problem, result)
    verdicts = shard_verdicts(results, cell.judged_budgets())
    elapsed = time.perf_counter() - start
    candidates = [c for r in results for c in r.candidates]
    n_fallback = sum(c.answer_method == "last_number" for c in candidates)
    if candidates and n_fallback / len(candidates) > 0.5:
        logger.warning("answer extraction fell back to the last number for %d/%d candidates", n_fallback, len(candidates))
    logger.info(
        "shard end cell=%s problems=%d unparsed=%d accuracy=%s elapsed_s=%.1f",
        cell.cell_id, len(problems), sum(c.answer is None for c in candidates), accuracy_at(verdicts, cell.n), elapsed,
    )  # fmt: skip
    return ShardOutcome(
        cell_id=cell.cell_id,
        problems=list(problems),
        results=results,
        verdicts=verdicts,
        policy_params=runtime.policy.n_params,
        verifier_params=runtime.verifier.n_params if runtime.verifier is not None else 0,
        elapsed_s=elapsed,
    )


def accuracy_at(verdicts: Sequence[Verdict], n: int) -> dict[str, float]:
    """Mean verdict per method at budget `n` (pass: the mean pass@n estimate), rounded, in
    the order reports show methods."""
    by_method: dict[str, list[float]] = {}
    for v in verdicts:
        if v.n == n and v.source == "ttscale":
            by_method.setdefault(v.method, []).append(float(v.correct))
    return {m: round(sum(xs) / len(xs), 4) for m in METHODS if (xs := by_method.get(m))}


# ---- a shard against the store ------------------------------------------------------------------


@dataclass(frozen=True)
class ShardReport:
    """What one shard did; small and JSON-friendly (a task's return value)."""

    cell_id: str
    n_problems: int
    """Problems asked for."""
    n_written: int
    n_skipped: int
    """Already stored (by an earlier attempt or another run), or skipped as cancelled."""
    elapsed_s: float
    cell_done: bool
    cancelled: bool = False
    accuracy: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def run_shard(
    engine: Engine,
    cell: CellSpec | Mapping | str,
    problem_ids: Sequence[str],
    settings: Settings,
    *,
    sweep_id: str | None = None,
    flow_run_id: str | None = None,
    progress: Progress | None = None,
) -> ShardReport:
    """Run the problems of `problem_ids` not yet stored for `cell` and store them in one
    transaction; mark the cell done when all its problems are stored and settle its sweep.
    Skips everything when the cell is cancelled. Registers the cell if needed, so a shard is
    self-contained (a team worker may run it with nothing else of the sweep)."""
    start = time.perf_counter()
    cell = as_cell(cell)
    prepared = prepare_cell(cell, settings)
    by_id = {p.id: p for p in prepared.problems}
    unknown = [pid for pid in problem_ids if pid not in by_id]
    if unknown:
        raise SpecError(f"problem_ids: {len(unknown)} not in dataset {cell.dataset.label}, e.g. {unknown[0]!r}")
    state = sweep_state.cell_state(engine, cell.cell_id)
    if state.status == "cancelled":
        logger.info("shard skipped cell=%s: cancelled", cell.cell_id)
        return ShardReport(cell.cell_id, len(problem_ids), 0, len(problem_ids), 0.0, False, cancelled=True)
    todo = [by_id[pid] for pid in problem_ids if pid not in state.done]
    if not todo:
        logger.info("shard skipped cell=%s: all %d problems already stored", cell.cell_id, len(problem_ids))
        cell_done = _settle(engine, cell.cell_id, sweep_id)
        return ShardReport(cell.cell_id, len(problem_ids), 0, len(problem_ids), time.perf_counter() - start, cell_done)
    runtime = load_cell_runtime(prepared, settings)
    sweep_state.start_cell(
        engine, cell, n_problems=len(prepared.problems), policy_params=runtime.policy.n_params,
        verifier_params=runtime.verifier.n_params if runtime.verifier is not None else 0,
        sweep_id=sweep_id, flow_run_id=flow_run_id,
    )  # fmt: skip
    outcome = search_shard(cell, todo, runtime, progress)
    # All or nothing, and idempotent: a retry after a lost commit answer writes nothing twice.
    written = store.run_transaction(engine, lambda conn: store.write_shard(conn, outcome), what="writing the shard")
    cell_done = _settle(engine, cell.cell_id, sweep_id)
    return ShardReport(
        cell.cell_id,
        len(problem_ids),
        written.n_written_problems,
        len(problem_ids) - written.n_written_problems,
        time.perf_counter() - start,
        cell_done,
        accuracy=accuracy_at(outcome.verdicts, cell.n),
    )


def _settle(engine: Engine, cell_id: str, sweep_id: str | None) -> bool:
    cell_done = sweep_state.finish_cell_if_complete(engine, cell_id)
    if cell_done and sweep_id is not None:
        sweep_state.settle_sweep(engine, sweep_id)  # served cells follow their source; the sweep is done with its last cell
    return cell_done
