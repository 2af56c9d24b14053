"""Answer extraction and equivalence, with math-verify.

Extraction is tolerant of models that never write `\\boxed{}`: the last boxed expression,
else a stated answer ("the answer is 7"), else the last number in the text. Equivalence is
math-verify's (`\\frac{1}{2}` equals `0.5`), never string equality; answers are parsed once
each and pairs compared once (memoised).

Time. sympy can take minutes — or hold the GIL inside one big-integer operation, freezing
every thread of the process — on a short adversarial answer (`9^{9^{9^{9}}}`, `(x+1)^{100000}`,
`100000000!`). math-verify's own timeouts use `signal.alarm`, which works only in the main
thread and cannot interrupt a C-level computation. So parsing and comparison run in a child
process (`python -m ttscale.grading`, started on first use, one per process), where
math-verify's alarm is on (`PARSE_TIMEOUT_S`), and the caller waits at most `CALL_TIMEOUT_S`
per request, from any thread: past it the child is killed (restarted on the next request)
and the answer counts as unparsed. Parsing such an answer is instant — evaluating it is what
hangs — so each distinct answer is also compared with 0 once when it is parsed: one that
cannot be within the limit counts as unparsed (never correct, equal only to the same
string), and that is remembered, so it costs its time once per process rather than once per
comparison. Answers longer than `MAX_ANSWER_CHARS` are unparsed without asking.
If the child cannot be started at all, grading runs in-process as before (alarm in the main
thread only), with a warning.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 500
"""Longer extracted answers are counted as unparsed: no real answer is this long."""
PARSE_TIMEOUT_S = 5
"""math-verify's own limit per parse and per comparison (signal.alarm, in the child)."""
CALL_TIMEOUT_S = 20.0
"""Hard limit on one request to the child (a parse tries two forms, each up to
PARSE_TIMEOUT_S); past it the child is killed and the answer counts as unparsed."""
START_TIMEOUT_S = 180.0
"""Time the child may take to start and import math-verify (a busy machine is slow)."""
CHILD_MEMORY_BYTES = 4 * 2**30
"""Address-space limit of the child: a computation that needs more fails (unparsed)."""

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


# ---- math-verify, wherever it runs -----------------------------------------------------------


def _parse_here(answer: str, timeout_s: int | None) -> list:
    """math-verify's parse of `answer` (as inline math first), [] when it cannot."""
    from math_verify import parse

    wrapped = answer if answer.startswith("$") else f"${answer}$"
    try:
        return parse(wrapped, parsing_timeout=timeout_s) or parse(answer, parsing_timeout=timeout_s)
    except Exception:  # noqa: BLE001 - math-verify raises anything from sympy; unparsable is the answer
        return []


def _verify_here(pa: list, pb: list, timeout_s: int | None) -> bool:
    from math_verify import verify

    try:
        return bool(verify(pa, pb, timeout_seconds=timeout_s))
    except Exception:  # noqa: BLE001
        return False


def _serve(timeout_s: int) -> None:
    """The child: one JSON request per line on stdin (`["parse", a]` or `["verify", a, b]`),
    one line `1`/`0` back on stdout. Exits when stdin closes (the parent is gone)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from math_verify import verify
    from math_verify.errors import TimeoutException

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the protocol
    zero = _parse_here("0", timeout_s)  # imports sympy and math-verify before saying ready

    @lru_cache(maxsize=100_000)
    def checked(answer: str) -> tuple:
        """The parse of `answer`, or () when it has none — or when comparing it with 0 does not
        finish within the limit: parsing `9^{9^{9^{9}}}` is instant, evaluating it is not, and
        any comparison with a number would hang the same way."""
        parsed = tuple(_parse_here(answer, timeout_s))
        if parsed:
            try:
                verify(list(parsed), zero, timeout_seconds=timeout_s, raise_on_error=True)
            except TimeoutException:
                return ()
            except Exception:  # noqa: BLE001 - an error is not a hang: comparisons decide
                pass
        return parsed

    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            op, *args = json.loads(line)
            if op == "parse":
                ok = bool(checked(args[0]))
            else:
                pa, pb = checked(args[0]), checked(args[1])
                ok = bool(pa and pb) and _verify_here(list(pa), list(pb), timeout_s)
        except (Exception, MemoryError):  # noqa: BLE001 - a request that fails is a "no"
            ok = False
        out.write(b"1\n" if ok else b"0\n")
        out.flush()


class _Checker:
    """The child process that runs math-verify, one request at a time (a lock serialises
    threads). `ask` returns True/False, or None when the request overran and the child was
    killed, or when no child can run (the caller then grades in-process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = os.getpid()
        self._buffer = b""
        self.unavailable = False
        self.n_killed = 0

    def _start(self) -> None:
        package_parent = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ttscale.grading", "--serve", str(int(PARSE_TIMEOUT_S))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        if self._read_line(START_TIMEOUT_S) != b"ready":
            self._kill()
            raise OSError("the grading process did not start")

    def _read_line(self, timeout_s: float) -> bytes | None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:  # the child died
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.strip()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except (OSError, AttributeError):
                pass

    def ask(self, *request: str) -> bool | None:
        with self._lock:
            if self._pid != os.getpid():  # a forked copy: the child belongs to the parent process
                self._proc, self._pid, self._buffer = None, os.getpid(), b""
            if self.unavailable:
                return None
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                try:
                    self._start()
                except OSError as err:
                    self.unavailable = True
                    logger.warning("grading runs in-process (no time limit outside the main thread): %s", err)
                    return None
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n")
                self._proc.stdin.flush()
            except OSError:
                self._kill()
                return False
            start = time.monotonic()
            line = self._read_line(CALL_TIMEOUT_S)
            if line is None:
                self._kill()
                self.n_killed += 1
                logger.warning(
                    "answer grading stopped after %.0f s, counted as unparsed: %s %r",
                    time.monotonic() - start, request[0], request[1][:80],
                )  # fmt: skip
                return False
            return line == b"1"

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._pid == os.getpid():
                try:
                    self._proc.stdin.close()  # the child exits at end of input
                    self._proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                self._kill()


_CHECKER = _Checker()
atexit.register(_CHECKER.close)


def _timeout() -> int | None:
    """math-verify's alarm works only in the main thread (the in-process fallback)."""
    return PARSE_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=200_000)
def _parse_in_process(answer: str) -> tuple:
    return tuple(_parse_here(answer, _timeout()))


@lru_cache(maxsize=200_000)
def parses(answer: str) -> bool:
    """Whether math-verify can parse `answer` within the time limits (memoised)."""
    if len(answer) > MAX_ANSWER_CHARS:
        return False
    got = _CHECKER.ask("parse", answer)
    if got is None:
        got = bool(_parse_in_process(answer))
    if not got:
        logger.debug("unparsable answer=%r", answer[:80])
    return got


@lru_cache(maxsize=500_000)
def equivalent(a: str, b: str) -> bool:
    """Whether two answers are mathematically equal (math-verify), memoised per pair."""
    if a == b:
        return True
    if not parses(a) or not parses(b):
        return False
    got = _CHECKER.ask("verify", a, b)
    if got is None:
        got = _verify_here(list(_parse_in_process(a)), list(_parse_in_process(b)), _timeout())
    return got


@dataclass(frozen=True)
class Gold:
    """A gold answer, kept verbatim (it is parsed once, on first comparison, and memoised)."""

    answer: str


def parse_gold(answer: str) -> Gold:
    parses(answer)
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


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _serve(int(sys.argv[2]) if len(sys.argv) > 2 else PARSE_TIMEOUT_S)
