"""The one way a shard runs: `run_shard` prepares, claims, searches, grades, writes and settles it.

`ttscale run`, `ttscale sweep run`, a team worker and the serving endpoint all reach the search
through this module, never around it:

1. `planning.prepare_cell` checks every name and loads the problems (no model yet);
2. what the store already holds is skipped (`sweep_state.cell_state`; a cancelled cell skips all);
3. the rest is claimed (`store.claim_problems`): problems another live run is computing are
   deferred — returned, or with `wait` waited for — never computed twice;
4. `load_cell_runtime` loads the policy (one engine per process), the verifier and the prompts;
5. `search_shard` runs the strategy on the claimed problems in one batched search, grades every
   candidate and judges the verdicts (`analysis.shard_verdicts`, the same rules as reports),
   while a heartbeat thread keeps the claims alive;
6. the shard is written and its claims released in one idempotent transaction, retried while
   the store is down;
7. the cell is marked done once every problem is stored, and the sweep settled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

from ttscale.store import Connection, Engine
from ttscale import store, sweep_state
from ttscale.analysis.verdicts import METHODS, shard_verdicts
from ttscale.backends import load_policy, release_engines
from ttscale.backends.base import Policy
from ttscale.errors import SpecError
from ttscale.fidelity import rules
from ttscale.grading import extract_answer, group_equivalent, is_correct, parse_gold
from ttscale.planning import PreparedCell, prepare_cell
from ttscale.prompting import PromptBuilder
from ttscale.settings import Settings
from ttscale.spec import CellSpec, as_cell
from ttscale.strategies import run_strategy
from ttscale.strategies.common import SearchContext
from ttscale.tree import Problem, ProblemResult, ShardOutcome, Verdict, check_tree
from ttscale.verifiers import Verifier, load_verifier

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""What `search_shard` calls with the strategy's message after each batched step."""


@dataclass(frozen=True)
class ShardEvent:
    """What `run_shard` tells its `progress` callback, in order: `loading` (the policy and
    verifier), `searching` (after each batched step of the strategy), then `stored` (every
    problem of the shard is in the store now). Or only `skipped` (all were stored already) or
    `cancelled` (the cell is: nothing ran)."""

    cell_id: str
    stage: Literal["loading", "searching", "stored", "skipped", "cancelled"]
    n_problems: int
    """Problems of the shard."""
    elapsed_s: float
    """Since the shard started."""
    n_written: int = 0
    """Problems this shard stored (`stored`)."""
    n_generated_tokens: int = 0
    """Tokens the policy generated for this shard (`stored`)."""
    search_s: float = 0.0
    """Seconds the search took, without loading (`stored`): the denominator of tokens/s."""
    message: str = ""
    """The strategy's step message (`searching`)."""


ShardProgress = Callable[[ShardEvent], None]


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


def search_shard(cell: CellSpec, problems: Sequence[Problem], runtime: CellRuntime, progress: Progress | None = None) -> ShardOutcome:
    """Run the cell's strategy on `problems` (one batched search), grade and judge."""
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
    logger.info("shard start cell=%s strategy=%s n=%d problems=%d", cell.cell_id, cell.strategy.name, cell.n, len(problems))
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

CLAIM_TTL_S = 120.0
"""A run's claim on a problem lapses this long after its last heartbeat; another run may then
compute the problem. Six heartbeats: a store outage or a stall of a minute loses no claim."""
HEARTBEAT_S = 20.0
"""How often a run extends the claims of the problems it computes."""
WAIT_POLL_S = 1.0
"""How often a run waiting for problems another run computes reads the store."""


@dataclass(frozen=True)
class ShardReport:
    """What one shard did; small and JSON-friendly (a task's return value).
    `n_written + n_skipped + len(deferred) == n_problems`."""

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
    deferred: tuple[str, ...] = ()
    """Problems another live run was computing (claimed): not done by this call."""

    def then(self, later: ShardReport) -> ShardReport:
        """This report followed by `later`, a run of this one's deferred problems."""
        return replace(
            self, n_written=self.n_written + later.n_written, n_skipped=self.n_skipped + later.n_skipped,
            cell_done=later.cell_done, cancelled=later.cancelled, accuracy=later.accuracy or self.accuracy, deferred=later.deferred,
        )  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self) | {"deferred": list(self.deferred)}


def run_shard(
    engine: Engine,
    cell: CellSpec | Mapping | str,
    problem_ids: Sequence[str],
    settings: Settings,
    *,
    sweep_id: str | None = None,
    flow_run_id: str | None = None,
    progress: ShardProgress | None = None,
    wait: bool = False,
) -> ShardReport:
    """Run the problems of `problem_ids` not yet stored for `cell` and store them in one
    transaction; mark the cell done when all its problems are stored and settle its sweep.

    Computes only the problems it claims: those another live run is computing are `deferred`
    in the report, or with `wait` waited for (`wait_for_claims`) and then run — stored by the
    other run, or computed here if its claims were released or lapsed — so that the whole shard
    is stored on return. Skips everything when the cell is cancelled. Registers the cell if
    needed, so a shard is self-contained (a team worker may run it with nothing else of the
    sweep). `progress` is told each stage (`ShardEvent`); the library draws nothing itself."""
    start = time.perf_counter()
    cell = as_cell(cell)
    prepared = prepare_cell(cell, settings)
    known = {p.id for p in prepared.problems}
    unknown = [pid for pid in problem_ids if pid not in known]
    if unknown:
        raise SpecError(f"problem_ids: {len(unknown)} not in dataset {cell.dataset.label}, e.g. {unknown[0]!r}")
    run_claimed = functools.partial(_run_claimed, engine, prepared, settings, sweep_id=sweep_id, flow_run_id=flow_run_id, progress=progress)
    report = run_claimed(list(problem_ids))
    while wait and report.deferred:
        wait_for_claims(engine, cell.cell_id, report.deferred)
        report = report.then(run_claimed(report.deferred))
    return replace(report, elapsed_s=time.perf_counter() - start)


def _run_claimed(
    engine: Engine, prepared: PreparedCell, settings: Settings, problem_ids: Sequence[str], *,
    sweep_id: str | None, flow_run_id: str | None, progress: ShardProgress | None,
) -> ShardReport:  # fmt: skip
    """One pass of `run_shard`: skip what is stored, claim the rest, compute and store what it
    claimed; what other runs hold comes back `deferred`."""
    start = time.perf_counter()
    cell = prepared.cell

    def tell(stage: str, **fields: object) -> None:
        if progress is not None:
            progress(ShardEvent(cell.cell_id, stage, len(problem_ids), time.perf_counter() - start, **fields))  # type: ignore[arg-type]

    state = sweep_state.cell_state(engine, cell.cell_id)
    if state.status == "cancelled":
        logger.info("shard skipped cell=%s: cancelled", cell.cell_id)
        tell("cancelled")
        return ShardReport(cell.cell_id, len(problem_ids), 0, len(problem_ids), 0.0, False, cancelled=True)
    left = [pid for pid in problem_ids if pid not in state.done]
    claimant = store.Claimant.new()
    claim = store.ClaimResult()
    if left:
        claim = store.run_transaction(
            engine, lambda conn: store.claim_problems(conn, cell.cell_id, left, claimant, ttl_s=CLAIM_TTL_S), what="claiming the shard"
        )
    deferred = tuple(pid for pid in left if pid in claim.held)
    by_id = {p.id: p for p in prepared.problems}
    todo = [by_id[pid] for pid in left if pid in claim.claimed]
    if deferred:
        logger.info("shard deferred cell=%s problems=%d: another run is computing them", cell.cell_id, len(deferred))
    if not todo:
        n_stored = len(problem_ids) - len(deferred)
        logger.info("shard skipped cell=%s: %d stored, %d deferred", cell.cell_id, n_stored, len(deferred))
        cell_done = _settle(engine, cell.cell_id, sweep_id)
        tell("skipped")
        return ShardReport(cell.cell_id, len(problem_ids), 0, n_stored, time.perf_counter() - start, cell_done, deferred=deferred)
    try:
        with keep_claims(engine, claimant.owner, len(todo)):
            tell("loading")
            runtime = load_cell_runtime(prepared, settings)
            sweep_state.start_cell(
                engine, cell, n_problems=len(prepared.problems), policy_params=runtime.policy.n_params,
                verifier_params=runtime.verifier.n_params if runtime.verifier is not None else 0,
                sweep_id=sweep_id, flow_run_id=flow_run_id,
            )  # fmt: skip
            tell("searching")
            outcome = search_shard(cell, todo, runtime, None if progress is None else lambda message: tell("searching", message=message))
        # All or nothing, and idempotent: a retry after a lost commit answer writes nothing twice.
        written = store.run_transaction(engine, lambda conn: _write_and_release(conn, outcome, claimant.owner), what="writing the shard")
    except BaseException:
        _release_after_failure(engine, claimant.owner)
        raise
    cell_done = _settle(engine, cell.cell_id, sweep_id)
    tell("stored", n_written=written.n_written_problems, search_s=outcome.elapsed_s,
         n_generated_tokens=sum(r.n_generated_tokens or 0 for r in outcome.results))  # fmt: skip
    return ShardReport(
        cell.cell_id,
        len(problem_ids),
        written.n_written_problems,
        len(problem_ids) - len(deferred) - written.n_written_problems,
        time.perf_counter() - start,
        cell_done,
        accuracy=accuracy_at(outcome.verdicts, cell.n),
        deferred=deferred,
    )


def _write_and_release(conn: Connection, outcome: ShardOutcome, owner: str) -> store.WriteReport:
    written = store.write_shard(conn, outcome)
    store.release_claims(conn, owner)  # in the same transaction: stored and unclaimed at once
    return written


def _release_after_failure(engine: Engine, owner: str) -> None:
    """Free a failed shard's claims for the next run now rather than in CLAIM_TTL_S; one
    attempt, since the store may be what failed."""
    try:
        with store.transaction(engine) as conn:
            store.release_claims(conn, owner)
    except Exception as err:  # the shard's own error is the one to raise
        logger.warning("claims of a failed shard not released (they lapse in %.0f s): %s", CLAIM_TTL_S, err)


@contextlib.contextmanager
def keep_claims(engine: Engine, owner: str, n_claimed: int, *, interval_s: float | None = None) -> Iterator[None]:
    """While the block runs, a daemon thread extends `owner`'s claims every `interval_s`
    (default HEARTBEAT_S) to CLAIM_TTL_S from then. A failed beat is logged and the next one
    tried (the claims outlive several); claims found lapsed (taken over by another run after
    a long stall) are logged: that run may compute them too, and the store keeps one copy."""
    stop = threading.Event()
    interval_s = HEARTBEAT_S if interval_s is None else interval_s

    def beat() -> None:
        held = n_claimed
        while not stop.wait(interval_s):
            try:
                with store.transaction(engine) as conn:
                    now_held = store.extend_claims(conn, owner, ttl_s=CLAIM_TTL_S)
            except Exception as err:  # a missed beat, not a failed shard
                logger.warning("claims heartbeat failed, next in %.0f s: %s", interval_s, err)
                continue
            if now_held < held:
                logger.warning("claims lapsed: %d of %d problems taken over by another run, which may compute them too", held - now_held, n_claimed)
                held = now_held

    thread = threading.Thread(target=beat, name="ttscale-claims-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def wait_for_claims(engine: Engine, cell_id: str, problem_ids: Sequence[str], *, poll_s: float | None = None) -> None:
    """Return once no problem of `problem_ids` is claimed by another live run: each is stored,
    or its claim was released or lapsed. Bounded by the other runs: one that dies stops its
    heartbeat, and its claims lapse within CLAIM_TTL_S (at once, seen from its own host)."""
    bystander = store.Claimant.new()
    logger.info("shard waiting cell=%s problems=%d: another run is computing them", cell_id, len(problem_ids))

    def held() -> set[str]:
        with store.connect(engine) as conn:
            return store.held_problem_ids(conn, cell_id, problem_ids, bystander)

    while store.retrying(engine, held, what="reading claims"):
        time.sleep(WAIT_POLL_S if poll_s is None else poll_s)


def _settle(engine: Engine, cell_id: str, sweep_id: str | None) -> bool:
    cell_done = sweep_state.finish_cell_if_complete(engine, cell_id)
    if cell_done and sweep_id is not None:
        sweep_state.settle_sweep(engine, sweep_id)  # served cells follow their source; the sweep is done with its last cell
    return cell_done
