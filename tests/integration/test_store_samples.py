"""Hand-built cells and shards shared by the store tests, and a check that they are valid trees
(so a round-trip test compares against something a strategy could really return)."""

from __future__ import annotations

from ttscale.spec import CellSpec, DatasetSpec, SweepSpec
from ttscale.strategy_params import BeamSearchParams
from ttscale.tree import Candidate, Node, Problem, ProblemResult, ShardOutcome, Verdict, check_tree

POLICY_PARAMS = 1_235_814_400  # Llama-3.2-1B
VERIFIER_PARAMS = 8_030_261_248  # Llama-3.1-8B PRM


def sample_cell(n: int = 4, seed: int = 0) -> CellSpec:
    return CellSpec(
        model="meta-llama/Llama-3.2-1B-Instruct",
        verifier="rlhflow_prm",
        strategy=BeamSearchParams(beam_width=2, n_iterations=3),
        n=n,
        dataset=DatasetSpec(name="math500", limit=2),
        seed=seed,
    )


def sample_sweep(name: str = "beam vs best-of-n") -> SweepSpec:
    return SweepSpec(
        name=name,
        models=["meta-llama/Llama-3.2-1B-Instruct"],
        verifiers=["rlhflow_prm"],
        strategies=[BeamSearchParams(beam_width=2, n_iterations=3)],
        budgets=[2, 4],
        datasets=[DatasetSpec(name="math500", limit=2)],
    )


def _result(problem_id: str, texts: tuple[str, str, str, str]) -> ProblemResult:
    """A beam-search tree: root step 0, two children (1 selected, 2 pruned), leaf 3 under 1,
    and a second leaf 4 under 0; candidates end at 3 and 4. Nodes 1 and 2 carry particle weights,
    as particle filtering records them, so the column round-trips too."""
    a, b, c, d = texts
    nodes = [
        Node(0, None, 0, a, "step", 120, 30, 0, (0.91,), 40, "step", selected=True),
        Node(1, 0, 1, b, "step", 150, 25, 8, (0.75,), 35, "step", selected=True, weight=0.8125),
        Node(2, 0, 1, "Dead end.\n\n", "step", 150, 5, 0, (0.125,), 20, "step", pruned=True, weight=0.1875),
        Node(3, 1, 2, c, "step", 175, 40, 0, (0.5, 0.0625), 50, "eos", selected=True),
        Node(4, 0, 1, d, "completion", 150, 60, 0, (0.3333333333333333,), 30, "length", selected=True),
    ]
    candidates = [
        Candidate(0, a + b + c, 3, (0.91, 0.75, 0.5, 0.0625), 0.0625, 175, 103, "eos", "\\frac{1}{2}", True, "boxed", 0),
        Candidate(1, a + d, 4, (0.91, 0.3333333333333333), 0.3333333333333333, 150, 90, "length", None, None, None, -1),
    ]
    generated = sum(n.n_generated_tokens + n.n_lookahead_tokens for n in nodes)
    return ProblemResult(problem_id, nodes, candidates, n_prompt_tokens=120 + 150 * 3 + 175,
                         n_prompt_tokens_computed=120 + 3 * 30 + 25,
                         n_generated_tokens=generated, n_verifier_tokens=175, n_policy_calls=4)


def sample_outcome(cell_id: str, texts: tuple[str, str, str, str] | None = None, problem_text: str | None = None) -> ShardOutcome:
    """Two problems with trees, candidates (step scores, an unparsed one) and verdicts."""
    texts = texts or (
        "Let $x = \\sqrt{2}$.\n\n",
        "Then $x^2 = 2$, so \\(\\frac{x^2}{4} = \\frac{1}{2}\\).\n\n",
        "The answer is $\\boxed{\\frac{1}{2}}$.",
        "I think it is 7",
    )
    problems = [
        Problem("math500", "test/algebra/1.json", problem_text or "Compute $\\frac{(\\sqrt{2})^2}{4}$.", "\\frac{1}{2}", 2, "Algebra",
                {"unique_id": "test/algebra/1.json"}),
        Problem("math500", "test/geometry/2.json", "A square has side 3. Area?", "9", 1, "Geometry"),
    ]
    results = [_result(p.id, texts) for p in problems]
    verdicts = [
        v
        for p in problems
        for v in (
            Verdict(p.id, "naive", 1, "\\frac{1}{2}", True),
            Verdict(p.id, "weighted", 2, None, False),
            Verdict(p.id, "majority", 2, "\\frac{1}{2}", True),
            Verdict(p.id, "pass", 2, None, True),
        )
    ]
    return ShardOutcome(cell_id, problems, results, verdicts, POLICY_PARAMS, VERIFIER_PARAMS, elapsed_s=3.5)


def store_sample_sweep(engine, created_by: str = "tests"):
    """The sample sweep registered with one cell holding `sample_outcome`; returns (sweep id, cell)."""
    from ttscale import store

    spec = sample_sweep()
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, "name: x\n", created_by)
        cell = spec.cells()[-1]
        store.register_cell(conn, cell, sweep_id=sweep_id)
        store.write_shard(conn, sample_outcome(cell.cell_id))
    return sweep_id, cell


def test_sample_trees_hold_the_tree_invariants():
    outcome = sample_outcome("0" * 16)
    for result in outcome.results:
        check_tree(result)  # raises TreeInvariantError on a broken sample
    assert len(outcome.results) == 2
    assert sum(len(r.nodes) for r in outcome.results) == 10
