"""Answer extraction and equivalence, with math-verify.

Extraction is tolerant of models that never write `\\boxed{}`: the last boxed expression,
else a stated answer ("the answer is 7"), else the last number in the text. Equivalence is
math-verify's (`\\frac{1}{2}` equals `0.5`), never string equality; gold answers and
candidate answers are parsed once each (memoised), pairs compared once.

Threads: math-verify bounds its time with `signal.alarm`, which only works in the main
thread; elsewhere (Prefect task threads) its timeouts are turned off and pathological inputs
are bounded by length instead (`MAX_ANSWER_CHARS`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 500
"""Longer extracted answers are counted as unparsed: no real answer is this long, and sympy
can take minutes on adversarial LaTeX of this size."""
PARSE_TIMEOUT_S = 5

_PHRASE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*\$*\s*([^\n$]+?)\s*\$*\s*(?:\.\s|\.?$|\n|,\s|I hope)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i].strip()
    return None


def extract_answer(text: str) -> tuple[str | None, str | None]:
    """(answer, method) with method `boxed`, `phrase` or `last_number`; (None, None) if none."""
    boxed = _last_boxed(text)
    if boxed:
        return boxed, "boxed"
    phrases = _PHRASE.findall(text)
    if phrases and phrases[-1].strip():
        return phrases[-1].strip(), "phrase"
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].replace(",", ""), "last_number"
    return None, None


def _timeout() -> int | None:
    return PARSE_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=200_000)
def _parse(answer: str) -> tuple:
    from math_verify import parse

    if len(answer) > MAX_ANSWER_CHARS:
        return ()
    wrapped = answer if answer.startswith("$") else f"${answer}$"
    try:
        got = parse(wrapped, parsing_timeout=_timeout()) or parse(answer, parsing_timeout=_timeout())
    except Exception:  # noqa: BLE001 - math-verify raises anything from sympy; unparsable is the answer
        logger.debug("unparsable answer=%r", answer[:80])
        return ()
    return tuple(got)


@lru_cache(maxsize=500_000)
def equivalent(a: str, b: str) -> bool:
    """Whether two answers are mathematically equal (math-verify), memoised per pair."""
    if a == b:
        return True
    pa, pb = _parse(a), _parse(b)
    if not pa or not pb:
        return False
    from math_verify import verify

    try:
        return bool(verify(list(pa), list(pb), timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001
        return False


@dataclass(frozen=True)
class Gold:
    """A gold answer, kept verbatim (it is parsed once, on first comparison, and memoised)."""

    answer: str


def parse_gold(answer: str) -> Gold:
    _parse(answer)
    return Gold(answer)


def is_correct(answer: str | None, gold: Gold) -> bool:
    return answer is not None and equivalent(gold.answer, answer)


def group_equivalent(answers: Sequence[str | None]) -> list[int]:
    """Equivalence-class index of each answer (first occurrence defines the class), -1 for None.

    Classes are built greedily against each class's first member, comparing distinct strings
    only, so k distinct answers cost at most k·(classes) memoised comparisons.
    """
    reps: list[str] = []
    by_text: dict[str, int] = {}
    out = []
    for a in answers:
        if a is None:
            out.append(-1)
            continue
        if a not in by_text:
            by_text[a] = next((k for k, r in enumerate(reps) if equivalent(r, a)), len(reps))
            if by_text[a] == len(reps):
                reps.append(a)
        out.append(by_text[a])
    return out


# math-verify logs a warning on every call made with its timeouts off; we bound time ourselves.
logging.getLogger("math_verify").setLevel(logging.ERROR)
