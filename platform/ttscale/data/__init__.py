"""Problem sets, by registered name: `math500`, `gsm8k` (bundled with their licenses),
`arith` (a deterministic generator of multi-step arithmetic word problems, levels 1-5), and
`jsonl` (any file with problem/answer fields). Every problem has a stable id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from ttscale.data.arith import LADDER_LEVELS, generate_arith, generate_ladder
from ttscale.errors import DataError
from ttscale.files import MAX_DATASET_BYTES, bounded_lines, open_regular
from ttscale.registry import Registry
from ttscale.spec import DatasetSpec
from ttscale.tree import Problem

DATASETS: Registry = Registry("dataset")
PROBLEM_FIELDS = ("problem", "question")
ANSWER_FIELDS = ("answer",)


def content_id(text: str) -> str:
    """A stable id for problems that come without one."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _read_jsonl(path: Path, label: str) -> Iterable[tuple[int, dict]]:
    with open_regular(path, label, max_bytes=MAX_DATASET_BYTES, error=DataError) as f:
        for lineno, line in bounded_lines(f, label, max_bytes=MAX_DATASET_BYTES, error=DataError):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{label}:{lineno}: not valid JSON ({err.msg})") from None
            except RecursionError:
                raise DataError(f"{label}:{lineno}: not valid JSON (nested too deeply)") from None
            if not isinstance(row, dict):
                raise DataError(f"{label}:{lineno}: each line must be a JSON object, got {type(row).__name__}")
            yield lineno, row


def _field(row: dict, names: tuple[str, ...], label: str, lineno: int) -> str:
    for name in names:
        if name in row:
            value = row[name]
            if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value).strip() == "":
                raise DataError(f"{label}:{lineno}: field `{name}` must be a non-empty string, got {value!r}"[:300])
            return str(value)
    wanted = " or ".join(f"`{n}`" for n in names)
    # Keys shown as written, but quoted when they hold a line break or other control character.
    has = ", ".join(k if k.isprintable() else repr(k) for k in sorted(map(str, row)))
    raise DataError(f"{label}:{lineno}: missing field {wanted} (has: {has or 'none'})"[:300])


def load_jsonl(path: str | Path, dataset: str, answer_after: str | None = None) -> list[Problem]:
    """Problems from a JSONL file with `problem`/`question` and `answer` fields.

    Optional fields: `unique_id`/`id` (else a content hash), `level` (int 1-5 or "Level 3"),
    `subject`; other fields go to metadata. `answer_after` keeps only the text after a marker
    (GSM8K writes its solution, then `#### 18`).
    """
    label = str(path)
    problems: list[Problem] = []
    seen: set[str] = set()
    for lineno, row in _read_jsonl(Path(path), label):
        text = _field(row, PROBLEM_FIELDS, label, lineno)
        answer = _field(row, ANSWER_FIELDS, label, lineno)
        if answer_after and answer_after in answer:
            answer = answer.rsplit(answer_after, 1)[1].strip().replace(",", "")
        pid = str(row.get("unique_id") or row.get("id") or content_id(text))
        if pid in seen:
            raise DataError(f"{label}:{lineno}: duplicate problem id {pid!r}")
        seen.add(pid)
        level = row.get("level")
        if isinstance(level, str) and level.removeprefix("Level ").strip().isdigit():
            level = int(level.removeprefix("Level ").strip())
        known = {*PROBLEM_FIELDS, *ANSWER_FIELDS, "unique_id", "id", "level", "subject"}
        problems.append(
            Problem(
                dataset=dataset,
                id=pid,
                text=text,
                answer=answer,
                level=level if isinstance(level, int) and not isinstance(level, bool) else None,
                subject=str(row["subject"]) if row.get("subject") is not None else None,
                metadata={k: v for k, v in row.items() if k not in known},
            )
        )
    return problems


def _bundled(name: str) -> Path:
    return Path(str(resources.files("ttscale.data").joinpath(name, "test.jsonl")))


@DATASETS.register("math500", "MATH-500 (Lightman et al. 2023 split of MATH), 500 problems, levels 1-5; MIT")
def _math500(spec: DatasetSpec) -> list[Problem]:
    return load_jsonl(_bundled("math500"), "math500")


@DATASETS.register("gsm8k", "GSM8K test set, 1,319 grade-school word problems; MIT")
def _gsm8k(spec: DatasetSpec) -> list[Problem]:
    return load_jsonl(_bundled("gsm8k"), "gsm8k", answer_after="####")


@DATASETS.register("arith", "Generated multi-step arithmetic word problems, levels 1-5 (operations and number size)")
def _arith(spec: DatasetSpec) -> list[Problem]:
    # Generate enough to fill `limit` after the level filter; the sequence is a pure function of the seed.
    count = spec.limit or 100
    per_level = 5 if spec.levels is None else len(spec.levels)
    return generate_arith(count * 5 // per_level + 5, seed=spec.seed)


@DATASETS.register("ladder", "Generated arithmetic in four rungs of difficulty, from `What is 7 + 5?` to arith level 2 (the CPU demo)")
def _ladder(spec: DatasetSpec) -> list[Problem]:
    count = spec.limit or 100
    per_level = len(LADDER_LEVELS) if spec.levels is None else len(spec.levels)
    return generate_ladder(count * len(LADDER_LEVELS) // per_level + len(LADDER_LEVELS), seed=spec.seed)


@DATASETS.register("jsonl", "Any JSONL file with `problem` (or `question`) and `answer` fields")
def _jsonl(spec: DatasetSpec) -> list[Problem]:
    assert spec.path is not None  # DatasetSpec requires it for jsonl
    return load_jsonl(spec.path, spec.label)


def load_problems(spec: DatasetSpec) -> list[Problem]:
    """The problems a dataset spec selects (levels filter, then `limit`), or a DataError."""
    problems = DATASETS.get(spec.name, field="dataset.name")(spec)
    if spec.levels is not None:
        problems = [p for p in problems if p.level in spec.levels]
    if spec.limit is not None:
        problems = problems[: spec.limit]
    if not problems:
        levels = f" at levels {list(spec.levels)}" if spec.levels else ""
        raise DataError(f"dataset {spec.label}: no problems{levels}")
    return problems
