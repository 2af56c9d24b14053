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


def _problem(rng: random.Random, level: int) -> tuple[str, int]:
    name, pronoun = rng.choice(_NAMES)
    item = rng.choice(_ITEMS)
    top = _MAX[level]
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
