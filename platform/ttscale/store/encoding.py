"""How Python values become column values, identically on SQLite and PostgreSQL.

Text. PostgreSQL rejects NUL (U+0000) in `text`, and a lone surrogate (U+D800..U+DFFF, which
Python strings may hold, e.g. from a tokenizer that split a pair) cannot be encoded as UTF-8
by either driver. Clean text (all but pathological model output) is stored verbatim, so it
stays readable and searchable in SQL. Text that holds a NUL or a lone surrogate, or that
happens to start with the marker, is stored as `MARKER + json.dumps(text)`: the JSON string
literal is pure ASCII (`\\u0000`, `\\udc80`), so it passes both engines, and decoding is exact.
The marker starts with U+0001, which real text does not begin with; if it ever does, that
text is escaped too, so decoding stays unambiguous.

Score lists (`Node.scores`, `Candidate.step_scores`) are JSON arrays in a text column:
floats round-trip exactly (repr), NaN and ±Infinity are written as the JSON extensions
`NaN`/`Infinity` that Python's json reads back.

polars strings must be valid UTF-8, so frames cannot hold a lone surrogate: `decode_frame`
replaces those (only) with U+FFFD. `read_problem_result` returns the exact text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import polars as pl

MARKER = "\x01ttscale-json:"
_SURROGATE = re.compile("[\ud800-\udfff]")


def needs_escape(text: str) -> bool:
    if text.isascii():  # fast path: no surrogate possible
        return "\x00" in text or text.startswith(MARKER)
    return "\x00" in text or _SURROGATE.search(text) is not None


def encode_text(text: str | None) -> str | None:
    """Text as stored: verbatim when clean, else MARKER + JSON literal (reversible)."""
    if text is None or not needs_escape(text):
        return text
    return MARKER + json.dumps(text, ensure_ascii=True)


def decode_text(stored: str | None) -> str | None:
    """Inverse of `encode_text`."""
    if stored is None or not stored.startswith(MARKER):
        return stored
    return json.loads(stored[len(MARKER) :])


def encode_floats(values: Iterable[float]) -> str:
    # repr of a list of finite floats is exactly what json.dumps writes (both use
    # float.__repr__), at a fraction of the cost — this runs once per node and candidate.
    # Only `nan`/`inf` contain an "n"; those take json's NaN/Infinity spelling.
    floats = [float(v) for v in values]
    text = repr(floats)
    return text if "n" not in text else json.dumps(floats, allow_nan=True)


def decode_floats(stored: str | None) -> tuple[float, ...]:
    if not stored:
        return ()
    return tuple(float(v) for v in json.loads(stored))


def encode_json(value: object) -> str:
    """JSON for metadata columns: sorted keys, ASCII-only (so NUL/surrogates are escaped)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True, allow_nan=True)


def _decode_for_frame(stored: str) -> str:
    text = decode_text(stored)
    return _SURROGATE.sub("\ufffd", text)


def decode_frame(df: pl.DataFrame, float_list_columns: Iterable[str] = ()) -> pl.DataFrame:
    """Decode every escaped text cell of `df` and parse JSON score columns into list[f64].

    Only columns that hold an escaped value pay for a Python-level decode.
    """
    fixes = []
    for name, dtype in df.schema.items():
        if dtype != pl.String or name in float_list_columns:
            continue
        col = df.get_column(name)
        if col.str.starts_with(MARKER).any():
            fixes.append(
                pl.when(pl.col(name).str.starts_with(MARKER))
                .then(pl.col(name).map_elements(_decode_for_frame, return_dtype=pl.String))
                .otherwise(pl.col(name))
                .alias(name)
            )
    if fixes:
        df = df.with_columns(fixes)
    for name in float_list_columns:
        if name in df.columns:
            parsed = [list(decode_floats(s)) for s in df.get_column(name).to_list()]
            df = df.with_columns(pl.Series(name, parsed, dtype=pl.List(pl.Float64)))
    return df

