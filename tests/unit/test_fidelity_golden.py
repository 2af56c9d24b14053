"""Golden tests: beam search and DVTS on tiny hand-derived cases, under both fidelity profiles.

Each case scripts the policy and the verifier explicitly and states, step by step, what the
reference (huggingface/search-and-learn: `src/sal/search/beam_search.py`,
`diverse_verifier_tree_search.py`, `utils.py`, `utils/score.py`, `models/reward_models.py`,
the 1B recipes: `filter_duplicates: true`, `sort_completed: false`, `agg_strategy: last`)
does with it, and what the `ttscale` profile does per docs/fidelity.md. The expected values
were derived by hand from that code, not by running ttscale.

Conventions of every case (1 problem, `last` aggregation):

- `SCRIPT[path]` lists what the successive samples of the prompt "solve prompt + path" return
  (sample k of a path is `SCRIPT[path][k]`, k counting that exact prompt's samples in the
  order they are requested). A step is cut at its first blank line, which it keeps; at the
  last iteration nothing is cut (the reference drops `stop` there) and the sample ends at EOS.
  A sample without a blank line ends at EOS. The reference gets the same samples: its beams
  request one sample each, in `active_beams` order (beam search), or M per subtree in subtree
  order (DVTS `generate_k_steps`).
- `SCORES[step]` is the verifier's score of a step whatever precedes it; `""` is the empty
  step, and `("", X)` the empty step right after step X (it overrides `""`). The reference's
  PRM splits the raw path with `text.split("\\n\\n")` (RLHFFlow._score_batched), so a partial
  path "X\\n\\n" is scored as steps ["X", ""] and, with `last`, ranked by the empty step;
  ttscale's split strips and drops empty chunks (fidelity row 1).
- The reference's `np.argsort(scores)[-N/M:]` on fewer than 16 scores is a stable ascending
  sort: of tied paths the later ones are kept (row 8). Survivors stay in list order.
- Under the reference a candidate's score is the last of its step scores (`score()` uses
  `last`), and so is ttscale's here (the cell aggregates with `last`).

Padding (row 2: the reference repeats its completed beams when fewer than N finished) cannot be
reached: every iteration samples N paths and the last one finishes all of them, so at least N
finish; it is not pinned here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ttscale.backends.scripted import ScriptedPolicy
from ttscale.fidelity import rules
from ttscale.prompting import PromptBuilder
from ttscale.spec import SamplingParams
from ttscale.strategies import load_strategy
from ttscale.strategies.common import SearchContext
from ttscale.strategy_params import BeamSearchParams, DVTSParams, StrategyParams
from ttscale.tree import Problem, check_tree
from ttscale.verifiers.scripted import ScriptedVerifier

REF, TTS = "search-and-learn", "ttscale"
PROBLEM = Problem("toy", "p0", "What is 1 + 0?", "1")

Script = dict[str, list[str]]
Scores = dict[str | tuple[str, str], float]
Expected = list[tuple[str, tuple[float, ...]]]


def search(
    name: str, params: StrategyParams, n: int, profile: str, script: Script, scores: Scores
) -> Expected:
    """Run strategy `name` on PROBLEM under `profile` with the scripted samples and step scores;
    return its candidates in order as (text, step scores). Any sample or step score the case
    did not script fails the test."""

    def respond(prompt: str, k: int) -> str:
        assert prompt.startswith(solve)
        path = prompt[len(solve) :]
        assert k < len(script.get(path, [])), f"unscripted: sample {k} of path {path!r}"
        return script[path][k]

    def score_step(problem: str, steps: Sequence[str]) -> float:
        step = steps[-1]
        if step == "" and len(steps) > 1 and ("", steps[-2]) in scores:
            return scores[("", steps[-2])]
        assert step in scores, f"unscored step {step!r} (path {list(steps)})"
        return scores[step]

    policy = ScriptedPolicy(respond)
    prompts = PromptBuilder(chat=policy.chat_prompt, format="chat")
    solve = prompts.solve(PROBLEM.text)
    ctx = SearchContext(
        policy=policy,
        prompts=prompts,
        sampling=SamplingParams(temperature=0.8, max_tokens=200, step_max_tokens=50),
        verifier=ScriptedVerifier(score_step),
        aggregation="last",
        rules=rules(profile),
    )
    (result,) = load_strategy(name)([PROBLEM], n, params, ctx)
    check_tree(result)
    for c in result.candidates:
        assert c.score == c.step_scores[-1]  # selection on the last step's score
    return [(c.text, c.step_scores) for c in result.candidates]


# ---------------------------------------------------------------------------------------------
# 1. Beam search, N=4, M=2, 3 iterations: duplicates, ties, a single survivor, and paths that
#    finish at different iterations.
# ---------------------------------------------------------------------------------------------

SCRIPT_1: Script = {
    "": ["A\n\n", "B\n\n", "C\n\n", "C\n\n"],
    "A\n\n": ["A1 done.", "A2\n\n"],
    "B\n\n": ["B2\n\n", "B1 done."],
    "C\n\n": ["C1 done.", "C2 done."],
    "A\n\nA2\n\n": ["A3a.", "A3b.", "A3c.", "A3d."],
    "B\n\nB2\n\n": ["B3a.", "B3b.", "B3c.", "B3d."],
}
SCORES_1: Scores = {
    "": 0.3,
    "A": 0.5, "B": 0.5, "C": 0.9,
    "A1 done.": 0.4, "A2": 0.55, "B1 done.": 0.45, "B2": 0.35, "C1 done.": 0.05, "C2 done.": 0.8,
    "A3a.": 0.7, "A3b.": 0.1, "A3c.": 0.95, "A3d.": 0.6,
    "B3a.": 0.65, "B3b.": 0.15, "B3c.": 0.25, "B3d.": 0.85,
}  # fmt: skip


@pytest.mark.parametrize(
    "profile, expected",
    [
        (
            REF,
            [
                ("C\n\nC1 done.", (0.9, 0.05)),
                ("B\n\nB1 done.", (0.5, 0.45)),
                ("C\n\nC2 done.", (0.9, 0.8)),
                ("B\n\nB2\n\nB3a.", (0.5, 0.35, 0.65)),
            ],
        ),
        (
            TTS,
            [
                ("A\n\nA2\n\nA3c.", (0.5, 0.55, 0.95)),
                ("C\n\nC2 done.", (0.9, 0.8)),
                ("A\n\nA2\n\nA3a.", (0.5, 0.55, 0.7)),
                ("A\n\nA2\n\nA3d.", (0.5, 0.55, 0.6)),
            ],
        ),
    ],
    ids=[REF, TTS],
)
def test_beam_search_duplicates_ties_survivors_and_finishing_order(profile: str, expected: Expected):
    """N=4, M=2 (N/M = 2 survive), 3 iterations (the third rolls out to EOS).

    Reference (`_beam_search`):
    - it 0: `beams` = 4 fresh beams b0..b3, all active (4 == N, no extension); each samples one
      step of the root prompt: b0 "A\\n\\n", b1 "B\\n\\n", b2 "C\\n\\n", b3 "C\\n\\n". None
      is EOS or empty, none completes. PRM on the raw split ["X", ""]: `last` = score of "" =
      0.3 for all four. filter_duplicates keeps the first of each text: [b0 A, b1 B, b2 C]
      (b3 dropped), scores [.3, .3, .3]. argsort = [0, 1, 2]; [-2:] = [1, 2]: B and C survive,
      A (tied, earlier) is pruned. [Without the filter [A, B, C, C] would keep C twice.]
    - it 1: active [B, C] (2 != 4): `(active * 3)[:4]` = [B, C, B, C], one sample each, so
      the samples interleave: B#0 "B2\\n\\n" (live), C#0 "C1 done." EOS -> completed #1,
      B#1 "B1 done." EOS -> completed #2, C#1 "C2 done." EOS -> completed #3. Live: only
      "B\\n\\nB2\\n\\n" (fewer than N/M = 2 survive); it is kept.
    - it 2 (last, no stop): active [B2] (1 != 4): `[B2] * 5` -> 4 copies, samples B3a..B3d,
      all EOS -> completed #4..#7.
    - end: `sort_completed` false -> `completed_beams[:4]` = #1..#4, in finishing order:
      "C\\n\\nC1 done." [.9, .05], "B\\n\\nB1 done." [.5, .45], "C\\n\\nC2 done." [.9, .8],
      "B\\n\\nB2\\n\\nB3a." [.5, .35, .65] (`all_scores`, raw split of the finished text: no
      empty step, the text does not end in a blank line). B3b..d (0.85 among them) are dropped.

    ttscale (docs/fidelity.md rows 1, 2, 3, 8, 9):
    - it 0: samples A, B, C, C from the root, ranked by their own step: A .5, B .5, C .9, C .9.
      Duplicates dropped (row 3): [A, B, C]. Stable sort by descending score: C, A, B; keep C
      and A (A and B tie: the earlier, A, survives; row 8). 4 samples spread best first
      (row 9): C x2, A x2.
    - it 1: C#0 "C1 done." (finished, .05), C#1 "C2 done." (finished, .8), A#0 "A1 done."
      (finished, .4), A#1 "A2\\n\\n" live: the only survivor, it gets all 4 samples.
    - it 2 (last): A3a .7, A3b .1, A3c .95, A3d .6, all finished.
    - end (row 2): the 4 best of the 7 finished, best first: A3c .95, C2 .8, A3a .7, A3d .6
      (A1 .4, A3b .1, C1 .05 dropped); step scores on the stripped split.
    """
    got = search("beam_search", BeamSearchParams(beam_width=2, n_iterations=3), 4, profile, SCRIPT_1, SCORES_1)
    assert got == expected


# ---------------------------------------------------------------------------------------------
# 1c'. Fewer survivors than N/M with an uneven split: N=4, M=1 (N/M = 4), 3 distinct paths.
# ---------------------------------------------------------------------------------------------

SCRIPT_UNEVEN: Script = {
    "": ["A\n\n", "B\n\n", "C\n\n", "C\n\n"],
    "A\n\n": ["A end 1.", "A end 2."],
    "B\n\n": ["B end 1."],
    "C\n\n": ["C end 1.", "C end 2."],
}
SCORES_UNEVEN: Scores = {
    "": 0.3, "A": 0.2, "B": 0.4, "C": 0.9,
    "A end 1.": 0.5, "A end 2.": 0.6, "B end 1.": 0.7, "C end 1.": 0.8, "C end 2.": 0.1,
}  # fmt: skip


@pytest.mark.parametrize(
    "profile, expected",
    [
        (
            REF,
            [
                ("A\n\nA end 1.", (0.2, 0.5)),
                ("B\n\nB end 1.", (0.4, 0.7)),
                ("C\n\nC end 1.", (0.9, 0.8)),
                ("A\n\nA end 2.", (0.2, 0.6)),
            ],
        ),
        (
            TTS,
            [
                ("C\n\nC end 1.", (0.9, 0.8)),
                ("B\n\nB end 1.", (0.4, 0.7)),
                ("A\n\nA end 1.", (0.2, 0.5)),
                ("C\n\nC end 2.", (0.9, 0.1)),
            ],
        ),
    ],
    ids=[REF, TTS],
)
def test_beam_search_spreads_extra_samples_over_fewer_survivors(profile: str, expected: Expected):
    """N=4, M=1 (N/M = 4 may survive), 2 iterations. With M=2 a shortfall leaves one survivor,
    which gets every sample under both profiles; here 3 survive, so who gets the 4th differs.

    Reference:
    - it 0: b0..b3 sample A, B, C, C. All tie at the empty step (0.3). Duplicates: [A, B, C].
      argsort(...)[-4:] keeps all three, in list order [A, B, C].
    - it 1 (last): 3 != 4: `([A, B, C] * 2)[:4]` = [A, B, C, A]: the earliest beam gets the
      extra sample and the children interleave: A#0 "A end 1.", B#0 "B end 1.",
      C#0 "C end 1.", A#1 "A end 2.", all EOS, completed in that order.
    - end: those 4, in finishing order: [.2, .5], [.4, .7], [.9, .8], [.2, .6].

    ttscale (row 9, then row 2):
    - it 0: A .2, B .4, C .9 after dropping the second C; all kept, best first: C, B, A;
      4 samples spread best first: C x2, B x1, A x1.
    - it 1 (last): C#0 "C end 1." .8, C#1 "C end 2." .1, B#0 "B end 1." .7, A#0 "A end 1." .5.
    - end: best first: C end 1 .8, B end 1 .7, A end 1 .5, C end 2 .1.
    """
    params = BeamSearchParams(beam_width=1, n_iterations=2)
    got = search("beam_search", params, 4, profile, SCRIPT_UNEVEN, SCORES_UNEVEN)
    assert got == expected


# ---------------------------------------------------------------------------------------------
# 2. The empty trailing step: the reference ranks a partial path by the PRM's score of "".
# ---------------------------------------------------------------------------------------------

SCRIPT_2: Script = {
    "": ["P\n\n", "Q\n\n", "R\n\n", "S\n\n"],
    "P\n\n": ["P end 1.", "P end 2."],
    "Q\n\n": ["Q end 1.", "Q end 2."],
    "S\n\n": ["S end 1.", "S end 2."],
}
SCORES_2: Scores = {
    "P": 0.9, "Q": 0.8, "R": 0.2, "S": 0.1,
    ("", "P"): 0.1, ("", "Q"): 0.8, ("", "R"): 0.2, ("", "S"): 0.7,
    "P end 1.": 0.6, "P end 2.": 0.3, "Q end 1.": 0.5, "Q end 2.": 0.7, "S end 1.": 0.4, "S end 2.": 0.2,
}  # fmt: skip


@pytest.mark.parametrize(
    "profile, expected",
    [
        (
            REF,
            [
                ("Q\n\nQ end 1.", (0.8, 0.5)),
                ("S\n\nS end 1.", (0.1, 0.4)),
                ("Q\n\nQ end 2.", (0.8, 0.7)),
                ("S\n\nS end 2.", (0.1, 0.2)),
            ],
        ),
        (
            TTS,
            [
                ("Q\n\nQ end 2.", (0.8, 0.7)),
                ("P\n\nP end 1.", (0.9, 0.6)),
                ("Q\n\nQ end 1.", (0.8, 0.5)),
                ("P\n\nP end 2.", (0.9, 0.3)),
            ],
        ),
    ],
    ids=[REF, TTS],
)
def test_beam_search_ranks_partial_paths_by_the_empty_step_under_the_reference(profile: str, expected: Expected):
    """N=4, M=2, 2 iterations. The steps' own scores rank P > Q > R > S; the PRM's scores of
    the empty step after them rank Q (.8) > S (.7) > R (.2) > P (.1).

    Reference:
    - it 0: b0..b3 sample "P\\n\\n", "Q\\n\\n", "R\\n\\n", "S\\n\\n"; none completes. The PRM
      scores "P\\n\\n".split("\\n\\n") = ["P", ""] -> [.9, .1], `last` = .1; likewise Q .8,
      R .2, S .7. No duplicates. argsort([.1, .8, .2, .7]) = [0, 2, 3, 1]; [-2:] = [3, 1]:
      Q and S survive (in list order [Q, S]); P, the best step, is pruned.
    - it 1 (last): `([Q, S] * 3)[:4]` = [Q, S, Q, S]: Q#0 "Q end 1.", S#0 "S end 1.",
      Q#1 "Q end 2.", S#1 "S end 2.", all EOS, completed in that order.
    - end: those 4: [.8, .5], [.1, .4], [.8, .7], [.1, .2] (finished texts end in no blank line).

    ttscale (row 1): "P\\n\\n" is the single step "P" (.9), Q .8, R .2, S .1: P and Q survive,
    2 samples each (P first). it 1: P#0 .6, P#1 .3, Q#0 .5, Q#1 .7. End (row 2), best first:
    Q end 2 .7, P end 1 .6, Q end 1 .5, P end 2 .3.
    """
    got = search("beam_search", BeamSearchParams(beam_width=2, n_iterations=2), 4, profile, SCRIPT_2, SCORES_2)
    assert got == expected


# ---------------------------------------------------------------------------------------------
# 3. DVTS, N=4, M=2: one subtree stops on a boxed step, the other runs to the last iteration.
# ---------------------------------------------------------------------------------------------

SCRIPT_3: Script = {
    "": ["A\n\n", "B\n\n", "C\n\n", "D\n\n"],
    "A\n\n": ["A1\n\n", "A2\n\n"],
    "B\n\n": ["B1\n\n", "B2\n\n"],
    "C\n\n": ["C1 \\boxed{3}\n\n", "C2\n\n"],
    "A\n\nA1\n\n": ["A1 end.", "A1 \\boxed{4}."],
    "B\n\nB2\n\n": ["B2 end.", "B2 \\boxed{5}."],
}
SCORES_3: Scores = {
    "": 0.5, "A": 0.3, "B": 0.8, "C": 0.6, "D": 0.2,
    "A1": 0.1, "A2": 0.9, "B1": 0.3, "B2": 0.7, "C1 \\boxed{3}": 0.9, "C2": 0.4,
    "A1 end.": 0.2, "A1 \\boxed{4}.": 0.75, "B2 end.": 0.65, "B2 \\boxed{5}.": 0.35,
}  # fmt: skip


@pytest.mark.parametrize(
    "profile, expected",
    [
        (
            REF,
            [
                ("A\n\nA1\n\nA1 end.", (0.3, 0.1, 0.2)),
                ("A\n\nA1\n\nA1 \\boxed{4}.", (0.3, 0.1, 0.75)),
                ("C\n\nC1 \\boxed{3}\n\n", (0.6, 0.9, 0.5)),
                ("C\n\nC2\n\n", (0.6, 0.4, 0.5)),
            ],
        ),
        (
            TTS,
            [
                ("B\n\nB2\n\nB2 end.", (0.8, 0.7, 0.65)),
                ("B\n\nB2\n\nB2 \\boxed{5}.", (0.8, 0.7, 0.35)),
                ("C\n\nC1 \\boxed{3}\n\n", (0.6, 0.9)),
                ("C\n\nC2\n\n", (0.6, 0.4)),
            ],
        ),
    ],
    ids=[REF, TTS],
)
def test_dvts_candidates_and_their_step_scores(profile: str, expected: Expected):
    """N=4, M=2: two subtrees t0, t1; 3 iterations (the third rolls out to EOS).

    Reference (`_dvts`):
    - it 0: gen_beams [t0, t1]; `generate_k_steps(..., beam_width=2)` asks 2 samples per beam,
      beam by beam: t0 gets root samples 0, 1 = "A\\n\\n", "B\\n\\n"; t1 gets 2, 3 = "C\\n\\n",
      "D\\n\\n". The PRM scores `current_text + t` on the raw split: ["A", ""] -> last .5, and
      .5 for B, C, D too. `np.argmax` takes the first of the tie: t0 goes on with A (not B,
      whose own step is .8), t1 with C. Neither next text is "" or EOS; no "boxed{".
    - it 1: t0 samples "A1\\n\\n", "A2\\n\\n" from "A\\n\\n": .5, .5 -> A1 (A2's own .9 unseen);
      t1 samples "C1 \\\\boxed{3}\\n\\n", "C2\\n\\n" from "C\\n\\n": .5, .5 -> C1. "boxed{" is
      in t1's current_text: t1 is pruned, keeping previous_text "C\\n\\n", next_texts
      [C1.., C2..] and all_scores [[.6, .9, .5], [.6, .4, .5]] (raw split: the empty step's .5
      last).
    - it 2 (last, no stop): only t0; samples "A1 end.", "A1 \\\\boxed{4}." from
      "A\\n\\nA1\\n\\n", EOS; all_scores [[.3, .1, .2], [.3, .1, .75]]; argmax 1; pruned (EOS).
    - output: per beam in order, per i < M, previous_text + next_texts[i] with best_scores =
      all_scores[i]: t0's two roll-outs, then t1's two children, C1's with the boxed step.
      Their `last` scores (what selection uses) are .2, .75, .5, .5: t1's are the empty step's.

    ttscale (rows 1 and 4; DVTS stops on `boxed{` in both profiles): steps stripped, no empty
    step. it 0: t0 A .3 vs B .8 -> B; t1 C .6 vs D .2 -> C. it 1: t0 B1 .3 vs B2 .7 -> B2,
    goes on; t1 C1 .9 vs C2 .4 -> C1, which states the boxed answer: t1 ends, its 2 children
    are its candidates, (.6, .9) and (.6, .4). it 2 (last): t0 from "B\\n\\nB2\\n\\n":
    "B2 end." .65, "B2 \\\\boxed{5}." .35. Candidates in subtree order: t0's, then t1's.
    """
    got = search("dvts", DVTSParams(beam_width=2, n_iterations=3), 4, profile, SCRIPT_3, SCORES_3)
    assert got == expected
# ---------------------------------------------------------------------------------------------
# 4. A boxed answer does not end a beam under the reference; ttscale ends it there.
# ---------------------------------------------------------------------------------------------

BOXED = "So \\boxed{1}."
SCRIPT_4: Script = {
    "": ["Y\n\n", "Z\n\n", BOXED + "\n\nAnd more.", "W\n\n"],
    BOXED + "\n\n": ["Also 2.", "Also 3."],
    "W\n\n": ["W end 1.", "W end 2."],
    "Y\n\n": ["Y end 1.", "Y end 2."],
    "Z\n\n": ["Z end 1.", "Z end 2."],
}
SCORES_4: Scores = {
    "": 0.3, "Y": 0.2, "Z": 0.3, BOXED: 0.9, "W": 0.1,
    "Also 2.": 0.35, "Also 3.": 0.45, "W end 1.": 0.55, "W end 2.": 0.15,
    "Y end 1.": 0.6, "Y end 2.": 0.4, "Z end 1.": 0.5, "Z end 2.": 0.05,
}  # fmt: skip


@pytest.mark.parametrize(
    "profile, expected",
    [
        (
            REF,
            [
                (BOXED + "\n\nAlso 2.", (0.9, 0.35)),
                ("W\n\nW end 1.", (0.1, 0.55)),
                (BOXED + "\n\nAlso 3.", (0.9, 0.45)),
                ("W\n\nW end 2.", (0.1, 0.15)),
            ],
        ),
        (
            TTS,
            [
                (BOXED + "\n\n", (0.9,)),
                ("Y\n\nY end 1.", (0.2, 0.6)),
                ("Z\n\nZ end 1.", (0.3, 0.5)),
                ("Y\n\nY end 2.", (0.2, 0.4)),
            ],
        ),
    ],
    ids=[REF, TTS],
)
def test_beam_search_boxed_step_ends_a_path_only_under_ttscale(profile: str, expected: Expected):
    """N=4, M=2, 2 iterations. The third root sample states the answer, then a blank line.

    Reference (a beam completes only on EOS, "length" or an empty step; `boxed{` is DVTS's test):
    - it 0: b0 "Y\\n\\n", b1 "Z\\n\\n", b2 "So \\\\boxed{1}.\\n\\n" (cut at the blank line,
      not EOS: not completed), b3 "W\\n\\n". All ranked by the empty step: .3, .3, .3, .3.
      argsort = [0, 1, 2, 3]; [-2:] keeps b2 (boxed) and b3 (W).
    - it 1 (last): [boxed, W, boxed, W]: boxed#0 "Also 2.", W#0 "W end 1.", boxed#1
      "Also 3.", W#1 "W end 2.", all EOS, completed in that order: the boxed path goes on past
      its answer.
    - end: [.9, .35], [.1, .55], [.9, .45], [.1, .15].

    ttscale (row 4): it 0: the boxed step ends its path, finished with steps ["So \\\\boxed{1}."]
    -> (.9,); live Y .2, Z .3, W .1: keep Z, Y, 2 samples each. it 1 (last): Z#0 .5, Z#1 .05,
    Y#0 .6, Y#1 .4. End (row 2), the 4 best of 5: boxed .9, Y end 1 .6, Z end 1 .5, Y end 2 .4.
    """
    got = search("beam_search", BeamSearchParams(beam_width=2, n_iterations=2), 4, profile, SCRIPT_4, SCORES_4)
    assert got == expected
