"""The result types every layer shares: search-tree nodes, candidates, per-problem results.

Strategies build these, grading fills in answers, the store writes them and analysis reads
them back; this module imports nothing of ttscale so that none of those layers has to import
another (the store never imports a strategy, a strategy never imports the store).

Invariants (checked by `check_tree`, relied on by the store and tested by property tests):
- `nodes[i].id == i`; a parent comes before its children; depth = parent depth + 1, roots 0.
- A candidate's `leaf` is a node id; for `step` nodes the candidate text is the concatenation
  of the texts on the path root → leaf; for `revision` nodes (self-refinement) it is the
  leaf's own text, since each round rewrites the whole answer.
- `ProblemResult.n_generated_tokens` equals the sum of every node's generated and lookahead
  tokens: nothing the policy generated is unaccounted for (unless it is None: not recorded).
- A node's particle `weight`, where recorded, lies in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NodeKind = Literal["step", "completion", "revision", "prefix"]
"""`prefix`: given text a roll-out continues (`strategies.rollout`), not generated: no tokens."""
FinishReason = Literal["step", "eos", "length"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One benchmark problem. `id` is stable across runs (dataset-native id or content hash)."""

    dataset: str
    id: str
    text: str
    answer: str
    level: int | None = None
    subject: str | None = None
    metadata: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(slots=True)
class Node:
    """One step (or whole completion, or revision) in a problem's search tree."""

    id: int
    parent: int | None
    depth: int
    text: str
    kind: NodeKind
    n_prompt_tokens: int
    """Tokens of the context this node was generated from (problem prompt + path so far)."""
    n_generated_tokens: int
    n_lookahead_tokens: int = 0
    """Tokens of lookahead roll-outs generated only to score this node, then discarded."""
    scores: tuple[float, ...] = ()
    """Verifier score of every `\\n\\n` step in this node's text (one for a search step)."""
    n_verifier_tokens: int = 0
    finish_reason: FinishReason = "step"
    selected: bool = False
    """On the path of at least one returned candidate."""
    pruned: bool = False
    """Dropped by the search before it finished."""
    n_cached_prompt_tokens: int = 0
    """Of `n_prompt_tokens`, those the engine served from its prefix cache (0 where it cannot tell)."""
    weight: float | None = None
    """Particle filtering: the node's share (0-1) of its problem's particle population at the last
    resampling it took part in (copies of one particle summed); None for other strategies."""


@dataclass(slots=True)
class Candidate:
    """One final solution returned by a strategy for a problem; order matters (prefix subsampling)."""

    index: int
    text: str
    leaf: int
    step_scores: tuple[float, ...]
    """Verifier scores of every step of the solution, root to leaf (empty without a verifier)."""
    score: float | None
    """`step_scores` aggregated (last/min/prod); None without a verifier."""
    n_prompt_tokens: int
    n_generated_tokens: int | None
    """Generated tokens on this candidate's path (shared steps counted for every candidate);
    None when not recorded (an imported file without token counts)."""
    finish_reason: FinishReason
    answer: str | None = None
    """Extracted final answer, filled in by grading."""
    correct: bool | None = None
    answer_method: str | None = None
    """How the answer was extracted: `boxed`, `phrase`, `last_number` or None (unparsed)."""
    answer_class: int = -1
    """Equivalence class of `answer` among this problem's candidates (math-verify equality); -1 unparsed."""


@dataclass(slots=True)
class ProblemResult:
    """What a strategy returns for one problem: the whole tree and the candidates."""

    problem_id: str
    nodes: list[Node]
    candidates: list[Candidate]
    n_prompt_tokens: int = 0
    """Prompt tokens of the policy's requests, once per request (n samples share one prompt):
    what the reference's accounting would process."""
    n_generated_tokens: int | None = 0
    """Everything the policy generated for the problem; None when not recorded (an imported file)."""
    n_verifier_tokens: int = 0
    n_policy_calls: int = 0
    """Generation requests made for this problem (one per beam per iteration, etc.)."""
    n_prompt_tokens_computed: int = 0
    """Prompt tokens the engine actually computed: every engine request's prompt less what its
    prefix cache served (a search re-sends the growing path each iteration; most of it is cached)."""
    predicted_bin: int | None = None
    """`adaptive` only: the difficulty bin the problem's probes predicted, whose policy choice ran
    (None for other strategies). Not stored: the store keeps the probes' scores it came from."""

    def path(self, leaf: int) -> list[Node]:
        """Nodes from the root to `leaf`, root first."""
        out = []
        cursor: int | None = leaf
        while cursor is not None:
            node = self.nodes[cursor]
            out.append(node)
            cursor = node.parent
        return out[::-1]


class TreeInvariantError(AssertionError):
    """A strategy returned a tree that breaks the invariants above (a bug, not bad input)."""


def check_tree(result: ProblemResult) -> None:
    """Raise TreeInvariantError if `result` breaks any invariant in the module docstring."""
    for i, node in enumerate(result.nodes):
        if node.id != i:
            raise TreeInvariantError(f"{result.problem_id}: node {i} has id {node.id}")
        if node.parent is None:
            if node.depth != 0:
                raise TreeInvariantError(f"{result.problem_id}: root {i} has depth {node.depth}")
        else:
            if not 0 <= node.parent < i:
                raise TreeInvariantError(f"{result.problem_id}: node {i} parent {node.parent} not before it")
            if node.depth != result.nodes[node.parent].depth + 1:
                raise TreeInvariantError(f"{result.problem_id}: node {i} depth {node.depth} inconsistent")
        if node.weight is not None and not -1e-9 <= node.weight <= 1 + 1e-9:
            raise TreeInvariantError(f"{result.problem_id}: node {i} weight {node.weight} outside [0, 1]")
    for cand in result.candidates:
        if not 0 <= cand.leaf < len(result.nodes):
            raise TreeInvariantError(f"{result.problem_id}: candidate {cand.index} leaf {cand.leaf} missing")
        path = result.path(cand.leaf)
        leaf = path[-1]
        expected = leaf.text if leaf.kind == "revision" else "".join(n.text for n in path)
        if cand.text != expected:
            raise TreeInvariantError(f"{result.problem_id}: candidate {cand.index} text differs from its path")
        if not all(n.selected for n in path):
            raise TreeInvariantError(f"{result.problem_id}: candidate {cand.index} path not marked selected")
    spent = sum(n.n_generated_tokens + n.n_lookahead_tokens for n in result.nodes)
    if result.n_generated_tokens is not None and spent != result.n_generated_tokens:
        raise TreeInvariantError(
            f"{result.problem_id}: nodes account for {spent} generated tokens, total says {result.n_generated_tokens}"
        )


SelectionMethod = Literal["naive", "weighted", "majority", "pass"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer a selection method picks from the first `n` candidates of a problem.

    `correct` is 1.0 or 0.0 for a selection method. `pass` is the oracle, with no answer: the
    unbiased pass@n estimate from all of the problem's N candidates (Chen et al. 2021), the
    probability that n of them drawn at random include a correct one.
    """

    problem_id: str
    method: SelectionMethod
    n: int
    answer: str | None
    correct: float
    source: str = "ttscale"
    """`ttscale` (judged from the candidates) or `published` (a prediction an imported file came with)."""


@dataclass(slots=True)
class ShardOutcome:
    """Everything one shard of one cell produced, handed to the store in one transaction."""

    cell_id: str
    problems: list[Problem]
    results: list[ProblemResult]
    """Parallel to `problems`; candidates graded (answer, correct, answer_class filled)."""
    verdicts: list[Verdict]
    policy_params: int
    verifier_params: int
    elapsed_s: float
