"""A deterministic generator of multi-step arithmetic word problems, levels 1-5.

The level sets the number of operations (1-5) and the size of the numbers, so a 135M model
on a CPU shows a real accuracy-vs-budget curve: it gets some level-1 problems greedily and
more with many samples, few at level 5. Answers are non-negative integers; every division is
exact. The sequence is a pure function of the seed (a local RNG, never the global one).
"""

from __future__ import annotations

import random

from ttscale.tree import Problem

_NAMES = [("Tom", "He"), ("Ana", "She"), ("Li", "He"), ("Maya", "She"), ("Omar", "He"), ("Zoe", "She")]
_ITEMS = ["apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards"]
_MAX = {1: 20, 2: 50, 3: 100, 4: 200, 5: 500}


def _problem(rng: random.Random, level: int, top: int | None = None) -> tuple[str, int]:
    """A word problem of `level` operations on numbers up to `top` (default: the level's)."""
    name, pronoun = rng.choice(_NAMES)
    item = rng.choice(_ITEMS)
    top = top or _MAX[level]
    value = rng.randint(2, top)
    sentences = [f"{name} has {value} {item}."]
    ops = ["add", "sub"] if level <= 2 else ["add", "sub", "mul", "div"]
    for _ in range(level):
        op = rng.choice(ops)
        if op == "mul" and value * 5 > 20 * top:
            op = "sub"
        if op == "div" and not [k for k in (2, 3, 4, 5) if value % k == 0]:
            op = "add"
        if op == "sub" and value < 2:
            op = "add"
        if op == "add":
            b = rng.randint(1, top)
            value += b
            sentences.append(rng.choice([f"{pronoun} buys {b} more.", f"{pronoun} finds {b} more."]))
        elif op == "sub":
            b = rng.randint(1, value - 1)
            value -= b
            sentences.append(rng.choice([f"{pronoun} gives away {b}.", f"{pronoun} loses {b}."]))
        elif op == "mul":
            k = rng.randint(2, 5)
            value *= k
            sentences.append(f"Then the number of {item} {pronoun.lower()} has becomes {k} times as large.")
        else:
            k = rng.choice([k for k in (2, 3, 4, 5) if value % k == 0])
            value //= k
            sentences.append(f"{pronoun} splits them into {k} equal groups and keeps one group.")
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences), value


def generate_arith(count: int, seed: int = 0) -> list[Problem]:
    """`count` problems cycling through levels 1-5; ids `arith-s{seed}-{index}`."""
    rng = random.Random(seed)
    problems = []
    for i in range(count):
        level = i % 5 + 1
        text, answer = _problem(rng, level)
        problems.append(Problem("arith", f"arith-s{seed}-{i:05d}", text, str(answer), level=level, subject="arithmetic"))
    return problems


def _bare(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        return f"What is {a} + {b}?", a + b
    a, b = max(a, b), min(a, b)
    return f"What is {a} - {b}?", a - b


LADDER_LEVELS = {
    1: "a bare sum or difference of single digits (`What is 7 + 5?`)",
    2: "one operation in words, single-digit numbers",
    3: "arith level 1: one operation in words, numbers up to 20",
    4: "arith level 2: two operations in words, numbers up to 50",
}


def generate_ladder(count: int, seed: int = 0) -> list[Problem]:
    """`count` problems cycling through the rungs of `LADDER_LEVELS`; ids `ladder-s{seed}-{index}`.

    A difficulty ladder for the bundled 135M model, whose accuracy on `arith` is near zero past
    level 1: sampled once, it solves about a third of rung 1, an eighth of rung 2 and a
    fifteenth of rung 3 — so a small sweep shows accuracy rising with n on every rung, and
    difficulty bins that differ (benchmarks/RESULTS.md)."""
    rng = random.Random(seed)
    problems = []
    for i in range(count):
        level = i % len(LADDER_LEVELS) + 1
        if level == 1:
            text, answer = _bare(rng)
        elif level == 2:
            text, answer = _problem(rng, 1, top=9)
        else:
            text, answer = _problem(rng, level - 2)
        problems.append(Problem("ladder", f"ladder-s{seed}-{i:05d}", text, str(answer), level=level, subject="arithmetic"))
    return problems
