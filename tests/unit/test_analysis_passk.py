"""The unbiased pass@k estimator."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttscale.analysis.passk import pass_at_k, with_pass_at_k


def test_pass_at_k_known_values():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # c/N at k=1
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0  # any correct among all N
    assert pass_at_k(256, 3, 64) == pytest.approx(1 - math.comb(253, 64) / math.comb(256, 64))


def test_k_beyond_n_is_capped():
    assert pass_at_k(4, 1, 16) == pass_at_k(4, 1, 4) == 1.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 0)


@given(st.integers(1, 300), st.data())
def test_pass_at_k_never_falls_as_k_grows(n_total, data):
    c = data.draw(st.integers(0, n_total))
    values = [pass_at_k(n_total, c, k) for k in range(1, n_total + 1)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[0] == pytest.approx(c / n_total)
    assert values[-1] == (1.0 if c else 0.0)


def test_frame_version_matches_scalar():
    df = pl.DataFrame({"n_total": [4, 4, 8, 8], "n_correct": [1, 1, 0, 8], "k": [1, 2, 4, 3]})
    out = with_pass_at_k(df)
    assert out["pass_at_k"].to_list() == pytest.approx([pass_at_k(t, c, k) for t, c, k in df.iter_rows()])
    assert out.height == 4
