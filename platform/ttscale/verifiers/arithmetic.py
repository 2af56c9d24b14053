"""A hard-coded verifier: checks the arithmetic a step claims (`12 + 35 = 47`, `15 × 6 = 90`).

Snell et al. 2024 name search against a hard-coded verifier as a strategy; this is the
cheapest such verifier, and it gives real signal on arithmetic word problems with a model
too small to judge itself. A step's score is the fraction of its claims that hold; a step
with no checkable claim scores `no_claim_score` (between a verified and a refuted step).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.verifiers import VERIFIERS
from ttscale.verifiers.base import StepScores

_NUM = r"\d[\d,]*(?:\.\d+)?"
NUMBER = re.compile(_NUM)
_OP = r"[-+*/×x÷·]"
# An expression of at least one binary operation, `=`, a number: `3 * (4 + 5) = 27`, `$12+35=47$`.
CLAIM = re.compile(
    rf"(?<![\w.])((?:\(\s*)*-?{_NUM}(?:\s*\)\s*)*(?:\s*{_OP}\s*(?:\(\s*)*-?{_NUM}(?:\s*\))*)+)\s*=\s*\$?\s*(-?{_NUM})(?![\d])"
)
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expr: str) -> float | None:
    text = expr.replace(",", "").replace("×", "*").replace("÷", "/").replace("·", "*")
    text = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError("unsupported")

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable claim `a op b ... = c` of a step."""

    operands: tuple[float, ...]
    result: float
    holds: bool


def number(text: str) -> float:
    return float(text.replace(",", ""))


def claims(step: str) -> list[Claim]:
    """Every checkable claim in one step, in order."""
    out = []
    for expr, result in CLAIM.findall(step):
        value = evaluate(expr)
        if value is None:
            continue
        claimed = number(result)
        # Rounded results (`10 / 3 = 3.33`) count as right to the digits written.
        decimals = len(result.split(".")[1]) if "." in result else 0
        holds = abs(value - claimed) <= max(1e-9 * abs(value), 0.5 * 10**-decimals if "." in result else 1e-9)
        out.append(Claim(tuple(number(x) for x in NUMBER.findall(expr)), claimed, holds))
    return out


def check_claims(step: str) -> tuple[int, int]:
    """(claims that hold, claims found) in one step."""
    found = claims(step)
    return sum(c.holds for c in found), len(found)


class ArithmeticVerifier:
    name = "arithmetic"
    n_params = 0

    def __init__(self, no_claim_score: float = 0.5) -> None:
        self.no_claim_score = no_claim_score

    def score_step(self, step: str) -> float:
        held, found = check_claims(step)
        return held / found if found else self.no_claim_score

    def score(
        self, problems: Sequence[str], solutions: Sequence[Sequence[str]], start: Sequence[int]
    ) -> list[StepScores]:
        return [
            StepScores(tuple(self.score_step(s) for s in steps[first:]), 0)
            for steps, first in zip(solutions, start, strict=True)
        ]


@VERIFIERS.register("arithmetic", "Checks the arithmetic claims in each step (a hard-coded verifier; no model)")
def make_arithmetic(policy, settings) -> ArithmeticVerifier:
    return ArithmeticVerifier()
