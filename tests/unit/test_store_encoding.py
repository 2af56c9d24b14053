"""How values become column values: reversible text escaping, score lists, frames."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from ttscale.store.encoding import MARKER, decode_floats, decode_frame, decode_text, encode_floats, encode_text


@given(st.text(alphabet=st.characters(exclude_categories=())))  # surrogates and NUL included
def test_any_python_string_round_trips(text):
    stored = encode_text(text)
    assert decode_text(stored) == text
    stored.encode("utf-8")  # always encodable: no lone surrogate reaches the driver
    assert "\x00" not in stored  # PostgreSQL text accepts it


def test_clean_text_is_stored_verbatim():
    for text in ("", "plain", "\\frac{1}{2}\n\n", "naïve 中文 😀", "\x01 but not the marker"):
        assert encode_text(text) is text


def test_only_nul_surrogates_and_the_marker_are_escaped():
    assert encode_text("a\x00b") == MARKER + '"a\\u0000b"'
    assert encode_text("x\udc80") == MARKER + '"x\\udc80"'
    assert encode_text(MARKER + "looks escaped") == MARKER + '"\\u0001ttscale-json:looks escaped"'
    assert decode_text(encode_text(MARKER + "looks escaped")) == MARKER + "looks escaped"
    assert encode_text(None) is None and decode_text(None) is None


def test_score_lists_round_trip_exactly_including_non_finite():
    values = (0.1, 1 / 3, 5e-324, 1e308, -0.0, float("inf"), -float("inf"))
    assert decode_floats(encode_floats(values)) == values
    assert math.isnan(decode_floats(encode_floats([float("nan")]))[0])
    assert decode_floats(encode_floats(())) == ()


def test_frames_decode_escaped_cells_and_replace_lone_surrogates():
    df = pl.DataFrame({"text": [encode_text("a\x00b"), "plain", None, encode_text("half \ud800")], "scores": ["[0.5, NaN]", "[]", "[]", "[1]"]})
    out = decode_frame(df, float_list_columns=["scores"])
    assert out["text"].to_list() == ["a\x00b", "plain", None, "half \ufffd"]
    assert out["scores"].dtype == pl.List(pl.Float64)
    assert out["scores"][0][0] == 0.5 and math.isnan(out["scores"][0][1])


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True)))
def test_score_encoding_is_plain_json(values):
    import json

    assert encode_floats(values) == json.dumps([float(v) for v in values], allow_nan=True)
