"""Fidelity profiles: reproduce the reference's search exactly, or run ttscale's choices.

A cell's `fidelity` (`CellSpec.fidelity`, part of its id: the two profiles never share stored
results) picks the `SearchRules` every strategy, the step splitter and the verdicts follow:

- `search-and-learn`: the semantics of huggingface/search-and-learn (`src/sal/search/*.py`,
  `src/sal/utils/score.py`, `src/sal/models/reward_models.py`, the Llama-3.2-1B recipes),
  difference by difference, so a number means what the reference's number means;
- `ttscale` (the default): where ttscale's choice is better, ttscale's — each stated with the
  reason in `DIFFERENCES`, which `scripts/fidelity_reference.py` renders into docs/fidelity.md.

Pure data: no I/O. The strategies read `SearchRules` from their context; nothing else branches
on the profile's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fidelity = Literal["ttscale", "search-and-learn"]
FIDELITIES: tuple[Fidelity, ...] = ("ttscale", "search-and-learn")
REFERENCE = "huggingface/search-and-learn"


@dataclass(frozen=True)
class SearchRules:
    """Every behaviour where the two profiles differ, as one value each."""

    raw_steps: bool
    """Steps for the verifier are the raw text split on `\\n\\n`, so a path ending in a blank line
    has an empty last step (True), or stripped chunks with empty ones dropped (False)."""
    beam_ends_on_boxed: bool
    """Beam search ends a path at a step that states `\\boxed{}` (DVTS always does)."""
    cut_step_ends_path: bool
    """A step cut at `step_max_tokens` ends its path as a finished candidate (True), or the path
    continues from the cut until the solution's `max_tokens` (False)."""
    beam_candidates: Literal["first_completed", "best_scored"]
    """Beam search returns the first N paths to finish, padded to N by repeating them
    (`first_completed`), or the N best-scored finished paths, no padding (`best_scored`)."""
    ties_to_later: bool
    """Among survivors with equal scores the later sample wins (the reference's ascending
    argsort, top k taken from the end) instead of the earlier."""
    extra_samples_by: Literal["generation_order", "score"]
    """When fewer than N/M paths survive, the N samples are spread over them in generation order
    (the reference cycles through its list of live beams) or best score first."""
    select_on_last: bool
    """Candidates are selected (naive, weighted) on their last step's score whatever the cell's
    aggregation (the reference's `score()` always aggregates with `last`)."""
    dvts_budgets_below_m: bool
    """DVTS verdicts at budgets below M and between multiples of M (partial subtrees), as the
    reference's `score()` computes for every power of two; else only whole subtrees."""
    beam_scores_lookahead: bool
    """Beam search ranks a step by its path plus the lookahead roll-out (DVTS always does); the
    reference's beam search generates the roll-out, charges its tokens and scores the path alone."""


def rules(fidelity: Fidelity) -> SearchRules:
    """The rules of a profile, read off `DIFFERENCES` (one place says what each profile does)."""
    return RULES[fidelity]


@dataclass(frozen=True)
class Difference:
    """One row of docs/fidelity.md."""

    topic: str
    reference: str
    """What the reference does."""
    where: str
    """Where the reference does it (file in huggingface/search-and-learn)."""
    ttscale: str
    """What the `ttscale` profile does."""
    why: str
    """Why ttscale's default is what it is."""
    rule: str | None = None
    """The `SearchRules` field that switches it (None: both profiles do the same)."""
    values: tuple[object, object] = (None, None)
    """The field's value under (`search-and-learn`, `ttscale`)."""


DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        "Step splitting for the verifier",
        "`text.split(\"\\n\\n\")` on the raw path: a partial path ends in a blank line, so it is scored with an extra "
        "empty last step, and with `last` aggregation every intermediate beam and DVTS child is ranked by the PRM's "
        "verdict on that empty step",
        "src/sal/models/reward_models.py (`RLHFFlow._score_batched`)",
        "steps are the stripped chunks between blank lines, empty chunks dropped",
        "an empty step carries no reasoning; ranking paths by the verifier's view of nothing makes the search "
        "close to random under `last`",
        "raw_steps",
        (True, False),
    ),
    Difference(
        "Beam search's candidates",
        "the first N paths to finish, in finishing order (`sort_completed: false` in the recipes), padded to N by "
        "repeating them when fewer finished",
        "src/sal/search/beam_search.py (`_beam_search`, end)",
        "the N best-scored finished paths, not padded (a problem may have fewer than N)",
        "finishing order is arbitrary; repeated copies would count twice in majority and weighted votes",
        "beam_candidates",
        ("first_completed", "best_scored"),
    ),
    Difference(
        "Duplicate paths",
        "identical live paths are dropped before the top N/M are kept (`filter_duplicates: true` in the 1B recipes)",
        "src/sal/search/beam_search.py; recipes/Llama-3.2-1B-Instruct/beam_search.yaml",
        "the same",
        "identical paths waste N/M slots; both profiles follow the recipe",
    ),
    Difference(
        "Ending a beam on `\\boxed`",
        "beam search ends a path only at EOS, the token limit or an empty step; only DVTS stops a subtree whose "
        "text contains `boxed{`",
        "src/sal/search/beam_search.py; src/sal/search/diverse_verifier_tree_search.py",
        "both end a path at a step that states `\\boxed{}`",
        "small models ramble past their answer; the boxed answer is the candidate",
        "beam_ends_on_boxed",
        (False, True),
    ),
    Difference(
        "A step cut at the token limit",
        "a step that hits `max_tokens` (2048 in the recipes) ends the path like EOS (vLLM reports no stop string)",
        "src/sal/search/utils.py (`generate_k_steps`: stop_reason None → \"EOS\")",
        "the path continues from the cut; only a path at the solution's `max_tokens` ends there",
        "ttscale's CPU-sized step limit (`step_max_tokens`, default 128) would otherwise turn every long step into "
        "a finished, answerless candidate",
        "cut_step_ends_path",
        (True, False),
    ),
    Difference(
        "Token limits",
        "2048 tokens per step and per solution (`max_tokens` in config.py; DVTS hard-codes 2048)",
        "src/sal/config.py; src/sal/search/diverse_verifier_tree_search.py",
        "the spec's `sampling.step_max_tokens` (default 128) and `sampling.max_tokens` (default 512); "
        "examples/reference_math500.yaml sets 2048 and 2048",
        "sized for a 135M model on a CPU; a limit is configuration, not a profile",
    ),
    Difference(
        "Selection under `min`/`prod` aggregation",
        "search ranks paths with the configured aggregation, but the final naive/weighted selection always "
        "aggregates step scores with `last`",
        "src/sal/utils/score.py (`score`: `aggregate_scores(s, \"last\")`)",
        "selection uses the cell's aggregation, as the search did",
        "one aggregation per cell: a number labelled `min` means `min` everywhere",
        "select_on_last",
        (True, False),
    ),
    Difference(
        "Ties among surviving beams",
        "`np.argsort(scores)[-N/M:]`: ascending sort, the top taken from the end, so of tied paths the later one "
        "survives (numpy's sort is stable below 16 elements; above, the order of ties is unspecified)",
        "src/sal/search/beam_search.py",
        "the earlier sample survives (a stable sort by descending score)",
        "deterministic at any size; the earlier comment claiming the reference keeps the earlier index was wrong",
        "ties_to_later",
        (True, False),
    ),
    Difference(
        "Extra samples when fewer than N/M paths survive",
        "the live beams are repeated in list (generation) order until there are N: earlier beams get the extra "
        "samples, and children come interleaved (b0, b1, ..., b0, b1, ...)",
        "src/sal/search/beam_search.py (`active_beams * repeats`)",
        "the extra samples go to the best-scored survivors",
        "spend the leftover budget where the verifier is most confident",
        "extra_samples_by",
        ("generation_order", "score"),
    ),
    Difference(
        "DVTS budgets below M",
        "`score()` computes predictions at every power of two up to N, also below M and between multiples of M, "
        "where the first n candidates are part of a subtree (not a DVTS run at n)",
        "src/sal/utils/score.py",
        "DVTS is judged only at whole subtrees (M, 2M, 4M, ..., N); a budget N that is not a multiple of M is "
        "refused",
        "a partial subtree is not a search at budget n, and its FLOPs would be charged wrongly",
        "dvts_budgets_below_m",
        (True, False),
    ),
    Difference(
        "Lookahead in beam search",
        "the k lookahead steps are generated (and their tokens counted) but the path is scored without them "
        "(`prm.score(..., [[beam.current_text]])`); DVTS scores `current_text + lookahead_text`",
        "src/sal/search/beam_search.py; src/sal/search/diverse_verifier_tree_search.py",
        "both score the path with its roll-out, as lookahead search is meant (Snell et al. 2024 §5.2)",
        "a roll-out that is never scored costs tokens and changes nothing",
        "beam_scores_lookahead",
        (False, True),
    ),
    Difference(
        "Prompt of a continued path",
        "the partial answer is rendered as the assistant's message with `continue_final_message=True`",
        "src/sal/search/beam_search.py, diverse_verifier_tree_search.py (`build_conv`)",
        "the partial answer is appended to the rendered generation prompt",
        "the same text for chat templates that do not trim the message (Llama 3.x, SmolLM2); token-id prompts "
        "need no re-rendering",
    ),
    Difference(
        "pass@n",
        "the unbiased estimator 1 − C(N−c, n)/C(N, n) over all N samples",
        "src/sal/utils/math.py (`pass_at_k`)",
        "the same, in stored verdicts and in every report",
        "one definition everywhere",
    ),
    Difference(
        "Compute accounting",
        "generated tokens per completion (`completion_tokens`; DVTS records -1, not recorded)",
        "src/sal/search/*.py",
        "both figures per candidate and cell: FLOPs charged as the reference does (2·P·generated tokens, Snell et "
        "al.'s convention; the default FLOPs axis) and FLOPs computed (prompt tokens not served from the prefix "
        "cache, plus generated)",
        "the charged figure compares with published numbers; the computed one is what the hardware did",
    ),
)

PARTICLE_FILTERING_REFERENCE = "Puri et al. 2025 (arXiv 2502.01618) and Red Hat's its_hub (`its_hub/algorithms/particle_gibbs.py`)"
PARTICLE_FILTERING: tuple[Difference, ...] = (
    Difference(
        "Batching",
        "its_hub propagates one prompt's particles per call: a loop over problems around every model call",
        "its_hub/algorithms/particle_gibbs.py (`ParticleGibbs._propagate`, `infer`)",
        "one engine call per iteration for the live particles of every problem of the shard, copies of one draw "
        "sent as one request for that many samples, and one verifier call",
        "short step-wise calls are dominated by per-call overhead (docs/performance.md)",
    ),
    Difference(
        "Resampling weights",
        "the paper writes softmax(w) of the rewards w; its_hub takes the softmax of logit(r), the PRM score's "
        "inverse sigmoid clipped to [1e-7, 1 - 1e-7]",
        "Puri et al. 2025, the particle filtering algorithm; its_hub (`_inv_sigmoid`, `_softmax`)",
        "its_hub's softmax of logit(r) / τ, with τ = `resample_temperature` (default 1: theirs)",
        "a softmax of probabilities in [0, 1] is nearly uniform; τ lets a sweep flatten or sharpen the draw",
    ),
    Difference(
        "The reward",
        "the PRM's score of the partial answer; the paper's ablation prefers model-based aggregation (the PRM's "
        "score of the last step, given the whole path)",
        "Puri et al. 2025, reward aggregation ablation; its_hub (`prm.score` of the steps so far)",
        "the cell's aggregation of the path's step scores: `last` (the default) is the model-based one, `min` "
        "and `prod` the alternatives the paper compared",
        "one aggregation per cell, as for beam search and DVTS",
    ),
    Difference(
        "The final population",
        "its_hub resamples after every step, the last included, so the particles it returns can be copies of one "
        "finished particle; the paper's algorithm returns the particles once all have stopped",
        "its_hub/algorithms/particle_gibbs.py (`infer`)",
        "the paper's: the population is not drawn again once every particle has ended; finished particles take "
        "part in every draw before that (copied or dropped), and a copy is a candidate on the same leaf",
        "a last draw only adds sampling noise to the estimate; the weights of the final particles are kept on "
        "their nodes",
    ),
    Difference(
        "The answer",
        "its_hub returns the particle of largest weight (`argmax`, default) or one drawn by weight",
        "its_hub/algorithms/particle_gibbs.py (`SelectionMethod`)",
        "all N particles are candidates, selected naive / weighted / majority as for every strategy; `naive` "
        "(highest score) is its_hub's argmax, since a final weight grows with the reward",
        "every strategy is judged by the same selection methods",
    ),
    Difference(
        "Where a particle ends",
        "at EOS or the step generator's stop condition, within a maximum number of steps",
        "its_hub/lms.py (`StepGeneration`)",
        "where a beam search path ends (EOS, an empty step, the token limit, a step stating `\\boxed{}`); the "
        "last of `n_iterations` rolls every live particle out to the end",
        "the same stopping rules as the other step-wise strategies, so budgets compare",
    ),
    Difference(
        "Randomness",
        "the draws come from Python's global `random` module",
        "its_hub/algorithms/particle_gibbs.py (`random.choices`)",
        "a generator per problem seeded with the cell's seed and the problem's id",
        "reproducible given the engine's outputs, whatever else shares the problem's shard",
    ),
)
"""Where `particle_filtering` differs from its paper and its_hub (search-and-learn has no particle
filtering); the same in both profiles."""


RULES: dict[Fidelity, SearchRules] = {
    profile: SearchRules(**{d.rule: d.values[i] for d in DIFFERENCES if d.rule is not None})
    for i, profile in enumerate(("search-and-learn", "ttscale"))
}

STEP_LABELS_REFERENCE = "Math-Shepherd (Wang et al. 2024, arXiv 2312.08935, §3.3)"
STEP_LABELS: tuple[Difference, ...] = (
    Difference(
        "Where a step's continuations come from",
        "a completer samples N = 8 completions from every step of each sampled solution",
        "Math-Shepherd §3.3 (completer)",
        "the graded candidates already stored below the step in the search tree; with `ttscale learn dataset "
        "--rollouts N`, N new continuations only from steps with fewer than `--min-candidates` (default 1) below",
        "the search already paid for most continuations; roll-outs are spent where the tree has none (pruned beam steps)",
    ),
    Difference(
        "Pooling",
        "per step of one sampled solution",
        "Math-Shepherd §3.3",
        "one row per distinct (policy model, problem, step prefix), pooling every candidate below it from every "
        "cell of that policy, each counted once",
        "a prefix reached by several cells or samples is one piece of evidence, not several rows",
    ),
    Difference(
        "Labels",
        "hard (HE: any completion right) and soft (SE: the share right)",
        "Math-Shepherd §3.3",
        "the same two; `ttscale learn train` fits the soft one by default (`--label hard` for HE)",
        "the soft label keeps how often a step leads to the answer, which ranking candidates needs",
    ),
    Difference(
        "A roll-out's prompt",
        "the question and the solution so far",
        "Math-Shepherd §3.3",
        "the source cell's prompt template and sampling settings; the prefix's steps each followed by a blank line "
        "(a step cut at its token limit is continued as finished)",
        "continuations must split back into the prefix's steps to pool with its row",
    ),
    Difference(
        "The verifier trained",
        "a full PRM (Mistral-7B, LLemma) fine-tuned to predict the label at a step tag",
        "Math-Shepherd §4",
        "a logistic or one-hidden-layer MLP head on the frozen hidden state of one SmolLM2-135M layer at each step's "
        "last token",
        "trains on a 2-core CPU in minutes; the full-size path (TRL's PRM trainer on a GPU) is documented, not run (docs/learning.md)",
    ),
)
"""Where `ttscale learn`'s step labels and learned verifier differ from Math-Shepherd (both profiles)."""
