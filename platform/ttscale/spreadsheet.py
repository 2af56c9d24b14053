"""CSV cells a spreadsheet will not run: the one guard every CSV ttscale writes goes through.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is taken for a formula by
Excel, LibreOffice and Google Sheets (`=HYPERLINK("http://…","click")`, or worse). Problem texts,
answers and candidates come from datasets and models, so a CSV export must not hand them to a
spreadsheet as formulas: such a text cell is written with a leading `'`, which the spreadsheet
shows as text and does not display (OWASP's advice for CSV injection). A cell that is a plain
number (`-5`, `+3.5`) is left alone. Parquet and JSONL exports keep every value exact.
"""

from __future__ import annotations

import polars as pl

_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?\d+(?:\.\d+)?$"


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every text cell that a spreadsheet would run as a formula prefixed by `'`."""
    text = [k for k, v in frame.schema.items() if v == pl.String]
    return frame.with_columns(
        pl.when(pl.col(k).str.contains(_FORMULA_START) & ~pl.col(k).str.contains(_PLAIN_NUMBER))
        .then(pl.lit("'") + pl.col(k))
        .otherwise(pl.col(k))
        .alias(k)
        for k in text
    )
