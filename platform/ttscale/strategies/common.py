"""What every strategy shares: the context it runs in and the batched model calls it makes.

A strategy is pure search logic over the `Policy` and `Verifier` protocols: it never imports
an engine, a database or a tracker, and it batches every model call across all problems of
the shard (one `generate` per iteration, never one per problem).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ttscale.aggregation import aggregate
from ttscale.backends.base import Completion, GenerationRequest, Policy
from ttscale.fidelity import SearchRules, rules
from ttscale.prompting import PromptBuilder
from ttscale.spec import SamplingParams
from ttscale.tree import Candidate, Node, Problem, ProblemResult
from ttscale.verifiers.base import STEP_SEPARATOR, Verifier, split_steps
from ttscale.verifiers.cache import CachingVerifier


@dataclass
class SearchContext:
    policy: Policy
    prompts: PromptBuilder
    sampling: SamplingParams
    verifier: Verifier | None = None
    aggregation: str = "last"
    seed: int = 0
    progress: Callable[[str], None] | None = None
    """Called with a short message after each batched step (the CLI shows it; the library draws nothing)."""
    rules: SearchRules = field(default_factory=lambda: rules("ttscale"))
    """What the cell's fidelity profile does where ttscale and the reference differ (`ttscale.fidelity`)."""
    _cached: CachingVerifier | None = field(default=None, init=False, repr=False)

    @property
    def cached_verifier(self) -> CachingVerifier | None:
        if self.verifier is not None and self._cached is None:
            self._cached = CachingVerifier(self.verifier)
        return self._cached

    def steps(self, text: str) -> list[str]:
        """The verifier's steps of a text, split as the profile says."""
        return split_steps(text, raw=self.rules.raw_steps)

    def open_steps(self, text: str) -> int:
        """Steps of a path that a continuation cannot change: all but a trailing empty one (the
        raw split of a path ending in a blank line ends with an empty step the next one replaces)."""
        steps = self.steps(text)
        return len(steps) - (1 if steps and steps[-1] == "" else 0)

    def report(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


@dataclass(frozen=True)
class Request:
    """One generation request: which problem it serves and the text after the problem prompt."""

    problem: int
    prefix: str
    n: int
    prompt: str | None = None
    """A whole prompt to use instead of the problem's solve prompt + `prefix` (self-refinement)."""


def generate(
    ctx: SearchContext,
    problems: Sequence[Problem],
    results: Sequence[ProblemResult],
    requests: Sequence[Request],
    *,
    step: bool,
    greedy: bool = False,
) -> list[list[Completion]]:
    """One batched engine call for all `requests`; charges prompt tokens once per request and
    counts the prompt tokens the engine computed (not served from its prefix cache)."""
    if not requests:
        return []
    s = ctx.sampling
    solve = {i: ctx.prompts.solve(problems[i].text) for i in {r.problem for r in requests if r.prompt is None}}
    prompts = [r.prompt if r.prompt is not None else solve[r.problem] + r.prefix for r in requests]
    # One engine call even when requests ask for different n (beam search spreads N samples
    # unevenly over its survivors): a request for n = j·g samples, g the gcd of all n, goes in
    # as j copies of its prompt at n = g. vLLM runs n samples as n child requests of one prompt
    # anyway, so the copies cost nothing, and the whole shard stays in one batch instead of one
    # call per distinct n, each waiting for its slowest sequence. vLLM refuses n > 1 with greedy
    # sampling, so greedy requests go in as n copies at n = 1.
    temperature = 0.0 if greedy else s.temperature
    g = 1 if temperature == 0.0 else math.gcd(*(r.n for r in requests))
    owner = [i for i, r in enumerate(requests) for _ in range(r.n // g)]
    request = GenerationRequest(
        prompts=tuple(prompts[i] for i in owner),
        n=g,
        max_tokens=s.step_max_tokens if step else s.max_tokens,
        temperature=temperature,
        top_p=1.0 if greedy else s.top_p,
        stop=(STEP_SEPARATOR,) if step else None,
        seed=ctx.seed,
    )
    got = ctx.policy.generate(request)
    out: list[list[Completion]] = [[] for _ in requests]
    for i, completions in zip(owner, got, strict=True):
        out[i].extend(completions)
        if completions:
            res = results[requests[i].problem]
            res.n_prompt_tokens_computed += completions[0].n_prompt_tokens - completions[0].n_cached_prompt_tokens
    for r, completions in zip(requests, out, strict=True):
        res = results[r.problem]
        res.n_policy_calls += 1
        if completions:
            res.n_prompt_tokens += completions[0].n_prompt_tokens
    return out


def score_solutions(
    ctx: SearchContext, problem_texts: Sequence[str], texts: Sequence[str], charge: Sequence[ProblemResult]
) -> list[tuple[float, ...]]:
    """Verifier scores of every step of each text (empty tuples without a verifier), batched."""
    verifier = ctx.cached_verifier
    if verifier is None:
        return [() for _ in texts]
    steps = [ctx.steps(t) for t in texts]
    got = verifier.score(problem_texts, steps, [0] * len(steps))
    for res, g in zip(charge, got, strict=True):
        res.n_verifier_tokens += g.n_tokens
    return [g.scores for g in got]


def sample_whole(
    ctx: SearchContext, problems: Sequence[Problem], results: Sequence[ProblemResult], counts: Sequence[int]
) -> list[list[Node]]:
    """`counts[i]` more whole solutions for problem i, scored, added to `results[i]` as `completion`
    nodes at depth 0 (no candidates: the caller decides which nodes are): one engine call and one
    verifier call for all problems. Returns each problem's new nodes in sampling order."""
    asked = [(i, k) for i, k in enumerate(counts) if k > 0]
    if not asked:
        return [[] for _ in problems]
    got = generate(ctx, problems, results, [Request(i, "", k) for i, k in asked], step=False)
    flat = [(i, c) for (i, _), row in zip(asked, got, strict=True) for c in row]
    scores = score_solutions(ctx, [problems[i].text for i, _ in flat], [c.text for _, c in flat], [results[i] for i, _ in flat])
    out: list[list[Node]] = [[] for _ in problems]
    for (i, c), s in zip(flat, scores, strict=True):
        node = add_node(
            results[i],
            parent=None,
            depth=0,
            text=c.text,
            kind="completion",
            n_prompt_tokens=c.n_prompt_tokens,
            n_generated_tokens=c.n_generated_tokens,
            n_cached_prompt_tokens=c.n_cached_prompt_tokens,
            scores=s,
            finish_reason=c.finish_reason,
        )
        out[i].append(node)
    return out


def add_node(res: ProblemResult, **fields) -> Node:
    node = Node(id=len(res.nodes), **fields)
    res.nodes.append(node)
    res.n_generated_tokens += node.n_generated_tokens + node.n_lookahead_tokens
    return node


def make_candidate(ctx: SearchContext, res: ProblemResult, index: int, leaf: int, step_scores: tuple[float, ...]) -> Candidate:
    """A candidate ending at `leaf`; marks its path selected and sums its tokens."""
    path = res.path(leaf)
    for node in path:
        node.selected = True
    last = path[-1]
    text = last.text if last.kind == "revision" else "".join(n.text for n in path)
    return Candidate(
        index=index,
        text=text,
        leaf=leaf,
        step_scores=step_scores,
        score=candidate_score(ctx, step_scores),
        n_prompt_tokens=path[0].n_prompt_tokens,
        n_generated_tokens=sum(n.n_generated_tokens for n in path),
        finish_reason=last.finish_reason,
    )


def candidate_score(ctx: SearchContext, step_scores: Sequence[float]) -> float | None:
    """A candidate's score: its step scores aggregated as the cell says (None without a verifier)."""
    # The reference selects on the last step's score whatever the search aggregated with.
    how = "last" if ctx.rules.select_on_last else ctx.aggregation
    return aggregate(step_scores, how) if ctx.verifier is not None else None


@dataclass(frozen=True)
class Beam:
    """An unfinished path of one problem: its leaf node (None at the root) and its text."""

    problem: int
    node: int | None
    text: str
    n_steps: int
    """Steps of `text` a continuation leaves as they are (`SearchContext.open_steps`)."""
    n_tokens: int = 0
    """Tokens generated on the path so far (a cut step continues until the solution's limit)."""


@dataclass(frozen=True)
class Child:
    """One sampled step: its node, the path it continues (None: the path ended here), the score
    the search ranks it by and the verifier's scores of every step of its path."""

    node: Node
    cont: Beam | None
    rank: float | None
    path_scores: tuple[float, ...]


def is_terminal(ctx: SearchContext, completion: Completion, path_tokens: int, *, last_iteration: bool, ends_on_boxed: bool) -> bool:
    """Whether a step ends its path: the last iteration, EOS, an empty step, the token limit (a
    step cut at `step_max_tokens` only under the profile's `cut_step_ends_path`, else when the
    path reaches `max_tokens`), or, with `ends_on_boxed`, a step that states the boxed answer."""
    if last_iteration or completion.finish_reason == "eos":
        return True
    if (completion.text == "") if ctx.rules.raw_steps else not completion.text.strip():
        return True
    if completion.finish_reason == "length":
        return ctx.rules.cut_step_ends_path or path_tokens >= ctx.sampling.max_tokens
    return ends_on_boxed and states_answer(completion.text)


def states_answer(text: str) -> bool:
    """A step that states the boxed answer (`boxed{`, as the reference's DVTS checks)."""
    return "boxed{" in text


def expand(
    ctx: SearchContext,
    problems: Sequence[Problem],
    results: Sequence[ProblemResult],
    beams: Sequence[Beam],
    n_children: Sequence[int],
    *,
    last_iteration: bool,
    lookahead: int,
    ends_on_boxed: bool,
    score_lookahead: bool = True,
) -> list[list[Child]]:
    """Grow every beam by one step (`n_children[i]` samples each), in one batched call.

    Returns, per beam, its children in sampling order. A child's ranking score aggregates the
    step scores of its path plus `lookahead` greedy steps rolled out only for scoring (Snell et
    al. 2024 §5.2, lookahead search); the rolled-out text is discarded but its tokens are charged
    to the child (`score_lookahead` False: rolled out and charged but not scored, as the
    reference's beam search). `node.scores` holds the scores of the steps the child added (under the
    `search-and-learn` profile, with the empty step the reference scores after a blank line).
    """
    requests = [Request(b.problem, b.text, k) for b, k in zip(beams, n_children, strict=True)]
    got = generate(ctx, problems, results, requests, step=not last_iteration)
    grown: list[tuple[int, Node, Beam | None]] = []
    for bi, (beam, completions) in enumerate(zip(beams, got, strict=True)):
        res = results[beam.problem]
        parent_depth = -1 if beam.node is None else res.nodes[beam.node].depth
        for c in completions:
            node = add_node(
                res,
                parent=beam.node,
                depth=parent_depth + 1,
                text=c.text,
                kind="step",
                n_prompt_tokens=c.n_prompt_tokens,
                n_generated_tokens=c.n_generated_tokens,
                n_cached_prompt_tokens=c.n_cached_prompt_tokens,
                finish_reason=c.finish_reason,
            )
            text, tokens = beam.text + c.text, beam.n_tokens + c.n_generated_tokens
            ended = is_terminal(ctx, c, tokens, last_iteration=last_iteration, ends_on_boxed=ends_on_boxed)
            grown.append((bi, node, None if ended else Beam(beam.problem, node.id, text, ctx.open_steps(text), tokens)))
    extra = _look_ahead(ctx, problems, results, [(n, b) for _, n, b in grown if b is not None], lookahead)
    texts = [beams[bi].text + node.text + (extra.get(id(node), "") if score_lookahead else "") for bi, node, _ in grown]
    scores = score_solutions(
        ctx,
        [problems[beams[bi].problem].text for bi, _, _ in grown],
        texts,
        [results[beams[bi].problem] for bi, _, _ in grown],
    )
    out: list[list[Child]] = [[] for _ in beams]
    for (bi, node, cont), full in zip(grown, scores, strict=True):
        beam = beams[bi]
        node.scores = tuple(full[beam.n_steps : len(ctx.steps(beam.text + node.text))])
        rank = aggregate(full, ctx.aggregation) if ctx.verifier is not None else None
        out[bi].append(Child(node, cont, rank, tuple(full)))
    return out


def _look_ahead(
    ctx: SearchContext,
    problems: Sequence[Problem],
    results: Sequence[ProblemResult],
    items: Sequence[tuple[Node, Beam]],
    k: int,
) -> dict[int, str]:
    """Greedy k-step roll-outs from each (node, beam); returns id(node) → rolled-out text."""
    if k == 0 or not items:
        return {}
    rolled = {id(node): "" for node, _ in items}
    live = list(items)
    for _ in range(k):
        if not live:
            break
        got = generate(
            ctx, problems, results, [Request(b.problem, b.text + rolled[id(n)], 1) for n, b in live], step=True, greedy=True
        )
        nxt = []
        for (node, beam), (c,) in zip(live, got, strict=True):
            rolled[id(node)] += c.text
            node.n_lookahead_tokens += c.n_generated_tokens
            results[beam.problem].n_generated_tokens += c.n_generated_tokens
            if not is_terminal(ctx, c, beam.n_tokens, last_iteration=False, ends_on_boxed=True):
                nxt.append((node, beam))
        live = nxt
    return rolled
