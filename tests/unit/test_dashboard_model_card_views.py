"""The audit page's learned-verifier panel, pure (`dashboard/model_card_views.py`): facts, metrics
and data card from a read model card, training cells marked and linked only when stored."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dashboard"))

import model_card_views as mv  # noqa: E402

from tests.learned_models import VALIDATION, write_learned_model  # noqa: E402
from ttscale.learning.model_card import read_model_card  # noqa: E402

SWEPT, LOOSE, ELSEWHERE = "0123456789abcdef", "fedcba9876543210", "feedfacefeedface"
CELLS = [{"cell_id": cid, "model": "m", "strategy": "best_of_n", "verifier": v, "n": 8, "dataset": "ladder", "seed": 0,
          "n_problems_done": 24} for cid, v in ((SWEPT, "self"), (LOOSE, "learned:/x/.ttscale/old@0123456789ab"),
                                                (ELSEWHERE, "arith_chain"), ("[x](http://e)", "self"))]  # fmt: skip
STORED = pl.DataFrame({"cell_id": [SWEPT, LOOSE, "[x](http://e)", "another0another0"]})
MEMBERS = pl.DataFrame({"sweep_id": ["sweep-a", "sweep-a"], "cell_id": [SWEPT, "another0another0"]})


def _card(tmp_path):
    name = write_learned_model(tmp_path / "home" / "model", CELLS)
    return read_model_card(name, (tmp_path / "home",))


def test_metrics_and_data_tables_carry_the_folders_numbers(tmp_path):
    card = _card(tmp_path)
    metrics = {r["split"]: r for r in mv.metrics_table(card).iter_rows(named=True)}
    assert list(metrics) == ["train", "validation"]
    assert metrics["validation"]["step AUC"] == VALIDATION["step_auc"] and metrics["validation"]["ECE"] == VALIDATION["ece"]
    assert metrics["validation"]["final AUC within problems"] == VALIDATION["final_auc_within"]
    data = {r["split"]: r for r in mv.data_table(card).iter_rows(named=True)}
    assert list(data) == ["all", "train", "validation", "test"] and data["all"]["step prefixes"] == 2978
    assert data["test"]["hard positive share"] is None  # an empty split has no balance
    facts = dict(mv.model_facts(card).iter_rows())
    assert facts["display name"] == f"learned:model@{card.fingerprint[:8]}" and facts["model folder"] == str(tmp_path / "home" / "model")
    assert facts["head chosen on validation"] == "logistic, l2 0.1, layer 4" and "708 with no candidate below" in facts["stored nodes"]


def test_training_cells_are_marked_and_linked_only_when_stored_and_well_formed(tmp_path):
    card = _card(tmp_path)
    table = mv.training_cells(card, STORED)
    assert dict(zip(table["cell_id"], table["in this store"], strict=True)) == {
        SWEPT: "yes", LOOSE: "yes", ELSEWHERE: "no", "[x](http://e)": "yes",
    }  # fmt: skip
    assert table.filter(pl.col("cell_id") == LOOSE)["verifier"][0] == "learned:old@01234567"
    links = mv.training_links(card, STORED, MEMBERS)
    # a swept cell: its sweep's audit; a loose one: its own; an id that is no cell id: no link (labels are Markdown)
    assert [(link.page, link.query) for link in links] == [
        ("audit", {"sweep": "sweep-a", "cell": SWEPT}), ("audit", {"sweep": mv.UNSWEPT, "cell": LOOSE}),
    ]  # fmt: skip
    assert links[0].label == f"Audit: the sweep of 1 training cell (cell {SWEPT})" and links[1].label == f"Audit: training cell {LOOSE}"
    assert mv.left_out(card) is None
    assert mv.learned_verifiers(pl.DataFrame({"verifier": ["self", None, card.verifier, card.verifier]})) == [card.verifier]
