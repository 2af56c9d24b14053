"""The writer on SQLite and PostgreSQL: exact round trips, idempotent shards, all-or-nothing
transactions, awkward text, and the readers' frames."""

from __future__ import annotations

import math

import polars as pl
import pytest
import sqlalchemy as sa

from ttscale import store
from ttscale.compute import flops
from ttscale.errors import StoreError
from ttscale.store import read, schema
from tests.integration.test_store_samples import POLICY_PARAMS, VERIFIER_PARAMS, sample_cell, sample_outcome, sample_sweep

TABLES = ("sweeps", "cells", "sweep_cells", "problems", "problem_runs", "candidates", "nodes", "verdicts")


@pytest.fixture
def engine(store_url):
    eng = store.make_engine(store_url)
    yield eng
    eng.dispose()


@pytest.fixture
def cell(engine):
    cell = sample_cell()
    with store.transaction(engine) as conn:
        store.register_cell(conn, cell, policy_params=POLICY_PARAMS, verifier_params=VERIFIER_PARAMS)
    return cell


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[t])).scalar_one() for t in TABLES}


def test_shard_round_trips_exactly(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    with store.transaction(engine) as conn:
        report = store.write_shard(conn, outcome)
    assert report == store.WriteReport(n_written_problems=2, n_skipped_problems=0, n_rows=2 + 4 + 10 + 8)
    with engine.connect() as conn:
        for written in outcome.results:
            assert store.read_problem_result(conn, cell.cell_id, written.problem_id) == written
        assert store.done_problem_ids(conn, cell.cell_id) == {p.id for p in outcome.problems}


def test_same_shard_twice_is_stored_once(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    before = counts(engine)
    with store.transaction(engine) as conn:
        again = store.write_shard(conn, outcome)
    assert again == store.WriteReport(n_written_problems=0, n_skipped_problems=2, n_rows=0)
    assert counts(engine) == before


def test_partly_stored_shard_writes_only_the_rest(engine, cell):
    full = sample_outcome(cell.cell_id)
    first = sample_outcome(cell.cell_id)
    first.problems, first.results = first.problems[:1], first.results[:1]
    first.verdicts = [v for v in first.verdicts if v.problem_id == first.problems[0].id]
    with store.transaction(engine) as conn:
        store.write_shard(conn, first)
        report = store.write_shard(conn, full)
    assert (report.n_written_problems, report.n_skipped_problems) == (1, 1)
    assert counts(engine)["candidates"] == 4 and counts(engine)["verdicts"] == 8


def test_failure_inside_the_transaction_leaves_no_partial_shard(engine, cell):
    before = counts(engine)
    with pytest.raises(RuntimeError, match="worker died"), store.transaction(engine) as conn:
        report = store.write_shard(conn, sample_outcome(cell.cell_id))
        assert report.n_rows > 0  # rows were written in this transaction ...
        raise RuntimeError("worker died")
    assert counts(engine) == before  # ... and rolled back with it
    with engine.connect() as conn:
        assert store.done_problem_ids(conn, cell.cell_id) == set()


def test_cell_totals_count_each_problem_once(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    for _ in range(2):
        with store.transaction(engine) as conn:
            store.write_shard(conn, outcome)
    with engine.connect() as conn:
        row = store.read_cells(conn).row(0, named=True)
        runs = store.read_problem_runs(conn, [cell.cell_id])
    prompt = sum(r.n_prompt_tokens for r in outcome.results)
    generated = sum(r.n_generated_tokens for r in outcome.results)
    assert (row["n_prompt_tokens"], row["n_generated_tokens"], row["n_problems_done"]) == (prompt, generated, 2)
    computed = sum(r.n_prompt_tokens_computed for r in outcome.results)
    assert row["n_prompt_tokens_computed"] == computed
    assert row["policy_flops"] == float(flops(POLICY_PARAMS, generated))  # charged: generated only
    assert row["policy_flops_computed"] == float(flops(POLICY_PARAMS, computed + generated))
    assert runs["verifier_flops"].to_list() == [flops(VERIFIER_PARAMS, 175)] * 2
    assert runs["elapsed_s"].sum() == pytest.approx(outcome.elapsed_s)


AWKWARD = {
    "nul": ("before\x00after\n\n", "\x00", "tail \x00\x00", "x"),
    "lone_surrogates": ("high \ud800 alone\n\n", "low \udc80\n\n", "pair 😀 and half \udfff", "\ud83d"),
    "latex": ("$$\\int_0^1 x^2\\,dx = \\tfrac{1}{3}$$\n\n", "\\begin{align} a &= b \\\\ c &= d \\end{align}\n\n",
              "50\\% of \\{1,2\\} — «ü» 中文 \\boxed{\\dfrac{1}{3}}", "'; DROP TABLE nodes; --"),
    "marker_lookalike": ("\x01ttscale-json:\"not escaped\"\n\n", "\x01", "\\x00 \\u0000 literal", "tab\there\r\n"),
    "huge": ("a" * 100_000 + "\n\n", "é" * 100_000 + "\n\n", "\\frac{1}{2}" * 10_000, "z" * 100_000),
}


@pytest.mark.parametrize("case", AWKWARD)
def test_awkward_text_round_trips_intact(engine, cell, case):
    texts = AWKWARD[case]
    outcome = sample_outcome(cell.cell_id, texts=texts, problem_text=texts[0] + texts[2])
    outcome.results[0].candidates[0].answer = texts[2]
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    with engine.connect() as conn:
        got = store.read_problem_result(conn, cell.cell_id, outcome.results[0].problem_id)
        problems = store.read_problems(conn, problem_ids=[outcome.problems[0].id])
    assert got == outcome.results[0]
    assert [n.text for n in got.nodes[:2]] == list(texts[:2])
    # Frames hold valid UTF-8 only: exact text except a lone surrogate, which becomes U+FFFD.
    expected = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in texts[0] + texts[2])
    assert problems["text"].to_list() == [expected]


def test_clean_text_is_stored_verbatim_and_dirty_text_escaped(engine, cell):
    outcome = sample_outcome(cell.cell_id, texts=("plain \\(x\\)\n\n", "nul\x00\n\n", "c", "d"))
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    with engine.connect() as conn:
        raw = dict(conn.execute(sa.select(schema.nodes.c.node_id, schema.nodes.c.text).where(schema.nodes.c.node_id < 2)).all())
    assert raw[0] == "plain \\(x\\)\n\n"  # readable in SQL as written
    assert raw[1] == '\x01ttscale-json:"nul\\u0000\\n\\n"'


def test_non_finite_step_scores_round_trip(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    node = outcome.results[0].nodes[3]
    node.scores = (float("nan"), float("inf"), -float("inf"), 5e-324)
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    with engine.connect() as conn:
        got = store.read_problem_result(conn, cell.cell_id, outcome.results[0].problem_id).nodes[3].scores
        tree = store.read_nodes(conn, cell.cell_id, outcome.results[0].problem_id)
    assert math.isnan(got[0]) and got[1:] == (float("inf"), -float("inf"), 5e-324)
    assert tree["scores"][3].to_list()[1:] == [float("inf"), -float("inf"), 5e-324]


def test_readers_return_fixed_schemas_on_both_engines(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    with engine.connect() as conn:
        cands = store.read_candidates(conn, [cell.cell_id])
        with_text = store.read_candidates(conn, [cell.cell_id], with_text=True)
        empty = store.read_candidates(conn, ["f" * 16])
        verdicts = store.read_verdicts(conn, [cell.cell_id])
        nodes = store.read_nodes(conn, cell.cell_id, outcome.problems[1].id)
        problems = store.read_problems(conn, dataset="math500")
    assert cands.schema == read.CANDIDATE_SCHEMA == empty.schema
    assert "text" not in cands.columns and with_text["text"][0] == outcome.results[0].candidates[0].text
    assert with_text["step_scores"][0].to_list() == [0.91, 0.75, 0.5, 0.0625]
    assert cands["correct"].to_list() == [True, None] * 2
    assert cands["policy_flops"][0] == flops(POLICY_PARAMS, 103)
    assert empty.height == 0
    assert verdicts.filter(pl.col("method") == "pass")["correct"].to_list() == [True, True]
    assert nodes["parent_id"].to_list() == [None, 0, 0, 1, 0]
    assert nodes["selected"].to_list() == [True, True, False, True, True]
    assert problems["level"].to_list() == [2, 1] and problems["metadata"][0] == '{"unique_id": "test/algebra/1.json"}'


def test_sweep_and_cells_are_registered_once_and_linked(engine):
    spec = sample_sweep()
    with store.transaction(engine) as conn:
        sweep_id = store.register_sweep(conn, spec, "name: beam vs best-of-n\n", "alice")
        again = store.register_sweep(conn, spec, "# reformatted\nname: beam vs best-of-n\n", "bob")
        big, small = sorted(spec.cells(), key=lambda c: -c.n)
        store.register_cell(conn, big, sweep_id=sweep_id)
        store.register_cell(conn, small, sweep_id=sweep_id, source_cell_id=big.cell_id)
        store.register_cell(conn, small, sweep_id=sweep_id, source_cell_id=big.cell_id)
    assert again == sweep_id and sweep_id == store.spec_hash(spec)[:16]
    with engine.connect() as conn:
        sweeps = store.read_sweeps(conn)
        cells = store.read_cells(conn, sweep_id)
    assert sweeps.select("created_by", "spec", "n_cells", "status").rows() == [("alice", "name: beam vs best-of-n\n", 2, "pending")]
    assert dict(zip(cells["n"], cells["source_cell_id"], strict=True)) == {4: None, 2: big.cell_id}
    assert set(cells["spec"]) == {big.canonical_json(), small.canonical_json()}
    assert cells["beam_width"].to_list() == [2, 2]


def test_a_cell_can_belong_to_two_sweeps(engine):
    one, two = sample_sweep("one"), sample_sweep("two")
    shared = one.cells()[0]
    with store.transaction(engine) as conn:
        ids = [store.register_sweep(conn, s, s.name, "me") for s in (one, two)]
        for sweep_id in ids:
            store.register_cell(conn, shared, sweep_id=sweep_id)
    with engine.connect() as conn:
        assert [store.read_cells(conn, i)["cell_id"].to_list() for i in ids] == [[shared.cell_id]] * 2
        assert store.read_cells(conn).height == 1


def test_status_updates_stamp_times_and_reject_unknowns(engine, cell):
    with store.transaction(engine) as conn:
        store.set_cell_status(conn, cell.cell_id, "running", mlflow_run_id="abc123")
    with engine.connect() as conn:
        first = store.read_cells(conn).row(0, named=True)
    with store.transaction(engine) as conn:
        store.set_cell_status(conn, cell.cell_id, "running")
        store.set_cell_status(conn, cell.cell_id, "done")
    with engine.connect() as conn:
        done = store.read_cells(conn).row(0, named=True)
    assert first["status"] == "running" and first["mlflow_run_id"] == "abc123" and first["started_at"] is not None
    assert done["started_at"] == first["started_at"]  # a second "running" keeps the first start
    assert done["status"] == "done" and done["finished_at"] >= done["started_at"]
    assert str(done["finished_at"].tzinfo) == "UTC"
    with store.transaction(engine) as conn:
        with pytest.raises(StoreError, match="must be one of"):
            store.set_cell_status(conn, cell.cell_id, "finished")
        with pytest.raises(StoreError, match="not registered"):
            store.set_cell_status(conn, "0" * 16, "done")
        with pytest.raises(StoreError, match="not registered"):
            store.set_sweep_status(conn, "0" * 16, "done")


def test_shard_of_an_unregistered_cell_is_refused_and_writes_nothing(engine):
    before = counts(engine)
    with pytest.raises(StoreError, match="not registered"), store.transaction(engine) as conn:
        store.write_shard(conn, sample_outcome("e" * 16))
    assert counts(engine) == before


def test_inconsistent_shard_is_refused(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    outcome.results.reverse()
    with store.transaction(engine) as conn, pytest.raises(StoreError, match=r"results\[0\].problem_id"):
        store.write_shard(conn, outcome)


def test_writer_works_through_an_orm_session(engine, cell):
    from sqlalchemy.orm import Session

    outcome = sample_outcome(cell.cell_id)
    with Session(engine) as session:
        store.write_shard(session, outcome)
        session.commit()
    with Session(engine) as session:
        assert store.done_problem_ids(session, cell.cell_id) == {p.id for p in outcome.problems}
        assert session.get(schema.ProblemRun, (cell.cell_id, outcome.problems[0].id)).n_nodes == 5


def test_frames_keep_infinite_scores_and_empty_strings(engine, cell):
    outcome = sample_outcome(cell.cell_id)
    first, second = outcome.results[0].candidates
    first.score, second.score = float("inf"), -float("inf")
    first.answer, second.answer = "", None
    with store.transaction(engine) as conn:
        store.write_shard(conn, outcome)
    with engine.connect() as conn:
        frame = store.read_candidates(conn, [cell.cell_id]).head(2)
    assert frame["score"].to_list() == [float("inf"), -float("inf")]
    assert frame["answer"].to_list() == ["", None]  # empty string and NULL stay apart


def test_reader_values_are_bound_not_spliced_into_sql(engine, cell):
    with store.transaction(engine) as conn:
        store.write_shard(conn, sample_outcome(cell.cell_id))
    hostile = "x') OR 1=1; DROP TABLE nodes; --"
    with engine.connect() as conn:
        assert store.read_candidates(conn, [hostile, "y'"]).height == 0
        assert store.read_problems(conn, dataset=hostile).height == 0
        assert store.read_nodes(conn, hostile, hostile).height == 0
    assert counts(engine)["nodes"] == 10
