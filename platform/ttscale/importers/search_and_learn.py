"""Import completions published in the search-and-learn layout as one ttscale cell.

The reference (huggingface/search-and-learn) pushes one row per problem to a dataset:
`problem`, `answer`, optional `level`/`unique_id`/`subject` (MATH-500 columns), and the
strategy's output: `completions: list[str]` (N solutions, in generation order — for DVTS
and beam search the order the reference scores prefixes in) and `scores: list[list[float]]`
(each completion's per-step PRM scores). `completion_tokens` (list[int]), when present,
gives the generated tokens (DVTS writes `-1`: not recorded, kept as null, never 0). The
reference's own predictions — `pred`, `pred_naive@k`, `pred_weighted@k`, `pred_maj@k` — are kept
as `published` verdicts beside ttscale's (`analysis.agreement` compares them); `agg_scores` is
checked against the last step scores. The cell's fidelity is `search-and-learn`: its budgets are
the reference's.

`read_completions` reads such a file (JSONL or parquet); `convert` — pure, no database —
turns its rows into a `CellSpec` (the given model and strategy, n = N, verifier
`imported`; `--aggregation` scores the candidates for selection, `last` by default as the reference's
`score()` does) and a `ShardOutcome` the store writer takes: per problem a tree of one
`completion` node per candidate (parent None, depth 0, scores = the step scores), the
candidates graded with `ttscale.grading` and scored with `ttscale.aggregation`, the
verdicts of every selection method at every budget (`analysis.shard_verdicts`, as the runner)
and the published ones.

Grading is memoised for the run (`MemoGrader`): each distinct completion text is extracted
once, each gold answer parsed once, each distinct (problem, answer) compared once.
Policy and verifier parameter counts are unknown, so FLOPs of an imported cell are 0.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl
from pydantic import ValidationError

from ttscale import grading
from ttscale.aggregation import AGGREGATIONS, aggregate
from ttscale.analysis.verdicts import shard_verdicts
from ttscale.data import content_id
from ttscale.errors import DataError, SpecError
from ttscale.files import MAX_IMPORT_BYTES, open_regular
from ttscale.spec import CellSpec, format_validation_error
from ttscale.strategy_params import PARAMS_BY_NAME, STRATEGY_NAMES
from ttscale.tree import Candidate, Node, Problem, ProblemResult, ShardOutcome, Verdict, check_tree

logger = logging.getLogger(__name__)

FORMAT = "search-and-learn"
REQUIRED_COLUMNS = ("problem", "answer", "completions", "scores")
VERIFIER = "imported"
"""Verifier name recorded for imported cells: the scores came with the file."""


class Grader(Protocol):
    """What import needs from `ttscale.grading` (the module itself satisfies it)."""

    def extract_answer(self, text: str) -> tuple[str | None, str | None]: ...
    def parse_gold(self, answer: str) -> Any: ...
    def is_correct(self, answer: str | None, gold: Any) -> bool: ...
    def group_equivalent(self, answers: Sequence[str | None]) -> list[int]: ...


@dataclass
class MemoGrader:
    """Memoises a grader for one import: each distinct input is graded once.

    - `extract(text)`: once per distinct completion text;
    - `gold(problem_id, answer)`: once per problem;
    - `classes(problem_id, answers)`: `group_equivalent` once per problem over its distinct
      answers (in first-occurrence order, so class numbers are what the full list gives);
    - `correct(problem_id, answer)`: once per distinct (problem, answer).
    """

    grader: Any
    _extracted: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    _golds: dict[str, Any] = field(default_factory=dict)
    _correct: dict[tuple[str, str | None], bool] = field(default_factory=dict)

    def extract(self, text: str) -> tuple[str | None, str | None]:
        if text not in self._extracted:
            self._extracted[text] = self.grader.extract_answer(text)
        return self._extracted[text]

    def gold(self, problem_id: str, answer: str) -> Any:
        if problem_id not in self._golds:
            self._golds[problem_id] = self.grader.parse_gold(answer)
        return self._golds[problem_id]

    def correct(self, problem_id: str, answer: str | None, gold: Any) -> bool:
        key = (problem_id, answer)
        if key not in self._correct:
            self._correct[key] = bool(self.grader.is_correct(answer, gold))
        return self._correct[key]

    def classes(self, answers: Sequence[str | None]) -> list[int]:
        distinct = list(dict.fromkeys(a for a in answers if a is not None))
        by_answer = dict(zip(distinct, self.grader.group_equivalent(distinct), strict=True))
        return [-1 if a is None else by_answer[a] for a in answers]


def read_completions(path: str | Path) -> pl.DataFrame:
    """Rows of a search-and-learn completions file (`.jsonl`/`.json` lines or `.parquet`).

    Raises DataError for a missing or unreadable file, or one without the required columns.
    """
    p = Path(path)
    open_regular(p, "import", max_bytes=MAX_IMPORT_BYTES, error=DataError).close()  # a regular file, not too large
    try:
        if p.suffix == ".parquet":
            rows = pl.read_parquet(p)
        elif p.suffix in (".jsonl", ".json", ".ndjson"):
            rows = pl.read_ndjson(p, infer_schema_length=None)
        else:
            raise DataError(f"{p}: unknown file type {p.suffix!r}; use .jsonl or .parquet")
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{p}: cannot read as {FORMAT}: {first}"[:300]) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(missing)} of the {FORMAT} layout; has {', '.join(rows.columns)}")
    return rows


def _strategy_params(strategy: str, beam_width: int) -> dict:
    if strategy not in STRATEGY_NAMES:
        raise SpecError(f"--strategy: unknown {strategy!r}; allowed: {', '.join(STRATEGY_NAMES)}")
    params: dict = {"name": strategy}
    if "beam_width" in PARAMS_BY_NAME[strategy].model_fields:
        params["beam_width"] = beam_width
    return params


def import_cell_spec(*, model: str, strategy: str, n: int, dataset: str, aggregation: str = "last", beam_width: int = 4) -> CellSpec:
    """The CellSpec of an imported file; errors name the CLI option."""
    if aggregation not in AGGREGATIONS:
        raise SpecError(f"--aggregation: unknown {aggregation!r}; allowed: {', '.join(AGGREGATIONS)}")
    data = {
        "model": model,
        "verifier": VERIFIER,
        "aggregation": aggregation,
        "strategy": _strategy_params(strategy, beam_width),
        "n": n,
        "dataset": {"name": dataset},
        # The file came from the reference's search: its budgets and scores follow the reference.
        "fidelity": "search-and-learn",
    }
    try:
        return CellSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err).splitlines()[0]) from None


def _level(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(?:Level\s*)?(\d+)\s*", str(value))
    return int(match.group(1)) if match else None


def _problem_id(row: dict) -> str:
    return str(row.get("unique_id") or row.get("id") or content_id(str(row["problem"])))


def convert(
    rows: pl.DataFrame,
    *,
    model: str,
    strategy: str,
    dataset: str,
    aggregation: str = "last",
    beam_width: int = 4,
    grader: Any = None,
    source: str = "file",
) -> tuple[CellSpec, ShardOutcome]:
    """A cell and its one shard from search-and-learn rows (see module docstring). Pure.

    `grader` defaults to `ttscale.grading`; it is wrapped in a `MemoGrader`. `source` names
    the input in error messages. Raises DataError for a malformed row, SpecError for a bad
    option (unknown strategy, n not a multiple of beam_width, ...).
    """
    if grader is None:
        grader = grading
    memo = grader if isinstance(grader, MemoGrader) else MemoGrader(grader)
    records = rows.to_dicts()
    if not records:
        raise DataError(f"{source}: no rows")
    n_max = 0
    for i, row in enumerate(records):
        completions, scores = row.get("completions"), row.get("scores")
        if not isinstance(completions, list) or not completions:
            raise DataError(f"{source}: row {i}: `completions` must be a non-empty list")
        if scores is not None and len(scores) != len(completions):
            raise DataError(f"{source}: row {i}: {len(scores)} score lists for {len(completions)} completions")
        n_max = max(n_max, len(completions))
    if any(len(r["completions"]) != n_max for r in records):
        logger.warning("rows hold different numbers of completions; n=%d (the largest)", n_max)
    cell = import_cell_spec(model=model, strategy=strategy, n=n_max, dataset=dataset, aggregation=aggregation, beam_width=beam_width)
    judged = cell.judged_budgets()

    problems: list[Problem] = []
    results: list[ProblemResult] = []
    seen: set[str] = set()
    known = {*REQUIRED_COLUMNS, "unique_id", "id", "level", "subject", "completion_tokens", "agg_scores", "pred"}
    published: list[Verdict] = []
    for i, row in enumerate(records):
        pid = _problem_id(row)
        if pid in seen:
            raise DataError(f"{source}: row {i}: duplicate problem id {pid!r}")
        seen.add(pid)
        if row.get("answer") is None or str(row["answer"]).strip() == "":
            raise DataError(f"{source}: row {i}: missing `answer`")
        problem = Problem(
            dataset=dataset,
            id=pid,
            text=str(row["problem"]),
            answer=str(row["answer"]),
            level=_level(row.get("level")),
            subject=None if row.get("subject") is None else str(row["subject"]),
            metadata={k: v for k, v in row.items() if k not in known and not _PRED.fullmatch(k) and _plain(v)},
        )
        result = _result(problem, row, aggregation, memo)
        check_tree(result)
        _check_agg_scores(row.get("agg_scores"), result, source, i)
        problems.append(problem)
        results.append(result)
        published += _published(problem, row, memo, n_max)
    verdicts: list[Verdict] = shard_verdicts(results, judged) + published
    outcome = ShardOutcome(
        cell_id=cell.cell_id,
        problems=problems,
        results=results,
        verdicts=verdicts,
        policy_params=0,
        verifier_params=0,
        elapsed_s=0.0,
    )
    return cell, outcome


def _plain(value: object) -> bool:
    """Small scalar metadata only (the reference rows carry many per-n prediction columns)."""
    return isinstance(value, str | int | float | bool) and len(str(value)) <= 2000


def _tokens(value: object, n: int) -> list[int | None]:
    """Generated tokens per completion: the list the file gives, None where it records none (a
    missing column, DVTS's `-1`, a negative or malformed entry) — not recorded is not zero."""
    if not isinstance(value, list) or len(value) != n:
        return [None] * n
    return [int(v) if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 else None for v in value]


_PRED = re.compile(r"pred_(naive|weighted|maj)@(\d+)")
_PUBLISHED_METHOD = {"naive": "naive", "weighted": "weighted", "maj": "majority"}


def _published(problem: Problem, row: dict, memo: MemoGrader, n_max: int) -> list[Verdict]:
    """The reference's own predictions of a row — `pred_naive@k`, `pred_weighted@k`,
    `pred_maj@k` and `pred` (its pick at N, stored as method `pred`) — graded by ttscale, with
    source `published`, kept beside ttscale's verdicts of the same candidates."""
    gold = memo.gold(problem.id, problem.answer)
    out = []
    for key, value in row.items():
        match = _PRED.fullmatch(key)
        method, n = (_PUBLISHED_METHOD[match[1]], int(match[2])) if match else ("pred", n_max) if key == "pred" else (None, 0)
        if method is None or value is None:
            continue
        answer, _ = memo.extract(str(value))
        out.append(Verdict(problem.id, method, n, answer, float(memo.correct(problem.id, answer, gold)), source="published"))
    return out


def _check_agg_scores(agg: object, result: ProblemResult, source: str, row: int) -> None:
    """The file's `agg_scores` are the last-step scores the reference selected on; say so when
    they are not what the candidates' step scores give (a file written by other code)."""
    if not isinstance(agg, list) or len(agg) != len(result.candidates):
        return
    differ = sum(
        1 for a, c in zip(agg, result.candidates, strict=True)
        if a is not None and c.step_scores and abs(float(a) - c.step_scores[-1]) > 1e-6
    )  # fmt: skip
    if differ:
        logger.warning("%s: row %d: %d agg_scores differ from the last step scores", source, row, differ)


def _result(problem: Problem, row: dict, aggregation: str, memo: MemoGrader) -> ProblemResult:
    completions = [str(c) for c in row["completions"]]
    step_scores = row.get("scores") or [[] for _ in completions]
    tokens = _tokens(row.get("completion_tokens"), len(completions))
    gold = memo.gold(problem.id, problem.answer)
    extracted = [memo.extract(text) for text in completions]
    classes = memo.classes([a for a, _ in extracted])
    nodes, candidates = [], []
    for i, (text, steps, n_tok, (answer, method), cls) in enumerate(
        zip(completions, step_scores, tokens, extracted, classes, strict=True)
    ):
        steps_t = tuple(float(s) for s in (steps or ()))
        nodes.append(
            Node(
                id=i, parent=None, depth=0, text=text, kind="completion", n_prompt_tokens=0,
                n_generated_tokens=n_tok or 0, scores=steps_t, finish_reason="eos", selected=True,
            )
        )  # fmt: skip
        candidates.append(
            Candidate(
                index=i,
                text=text,
                leaf=i,
                step_scores=steps_t,
                score=aggregate(steps_t, aggregation),
                n_prompt_tokens=0,
                n_generated_tokens=n_tok,
                finish_reason="eos",
                answer=answer,
                correct=memo.correct(problem.id, answer, gold),
                answer_method=method,
                answer_class=cls,
            )
        )
    return ProblemResult(
        problem_id=problem.id,
        nodes=nodes,
        candidates=candidates,
        n_generated_tokens=None if None in tokens else sum(tokens),
    )
