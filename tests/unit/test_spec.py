from __future__ import annotations

import pytest

from ttscale.errors import SpecError
from ttscale.spec import CellSpec, parse_sweep

BASE = {
    "name": "demo",
    "models": ["smollm2-135m"],
    "verifiers": ["arithmetic"],
    "strategies": [{"name": "best_of_n"}, {"name": "beam_search", "beam_width": 2}],
    "budgets": [2, 4],
    "datasets": [{"name": "arith", "limit": 5}],
}


def with_(**changes):
    return {**BASE, **changes}


def test_grid_expands_and_ids_are_stable():
    spec = parse_sweep(BASE)
    cells = spec.cells()
    assert len(cells) == 4
    assert len({c.cell_id for c in cells}) == 4
    assert [c.cell_id for c in parse_sweep(BASE).cells()] == [c.cell_id for c in cells]


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"strategies": [{"name": "beamsearch"}]}, "strategies[0]"),
        ({"budgets": [0, 4]}, "budgets: every n must be >= 1, got 0"),
        ({"budgets": [3]}, "strategies[1].beam_width: every budget must be a multiple of 2, got n=3"),
        ({"budgets": [4, 4]}, "budgets: duplicate entries"),
        ({"strategies": [{"name": "beam_search", "beam_width": 0}]}, "strategies[0].beam_width"),
        ({"strategies": [{"name": "dvts", "colour": 1}]}, "strategies[0].colour: Extra inputs are not permitted"),
        ({"verifiers": [None]}, "strategies[0]: best_of_n needs a verifier"),
        ({"datasets": [{"name": "jsonl"}]}, "datasets[0]: Value error, a `jsonl` dataset needs `path`"),
    ],
)
def test_invalid_specs_name_the_field(changes, message):
    with pytest.raises(SpecError) as err:
        parse_sweep(with_(**changes))
    assert message.replace("Value error, ", "") in str(err.value)


def test_non_mapping_spec_is_rejected():
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_sweep(["a"])


def test_cell_rejects_n_not_multiple_of_beam_width():
    with pytest.raises(ValueError, match="multiple of dvts.beam_width=4"):
        CellSpec(model="m", verifier="arithmetic", strategy={"name": "dvts"}, n=6, dataset={"name": "arith"})
