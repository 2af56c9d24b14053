"""Plain-text tables that fit a width: the layout of every table ttscale prints to a terminal.

A table wider than its output is split into several tables that each repeat the key columns
(the leading columns that say which row is which), rather than letting rich squeeze every
column to one or two characters. No cell is cut and no header is wrapped inside a word: each
column is at least as wide as its widest cell and its header's longest word, and a header
wraps at its spaces onto two lines at most where the width allows. Only when the key columns
and one more column cannot fit side by side may a cell wrap, and then only at its spaces.

Pure: strings in, rich `Table`s out; the caller prints them on a console of the same width.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

GAP = 2
"""Columns are separated by two spaces (rich's collapsed padding, no vertical rules)."""


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def _longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column's narrowest readable width: its widest cell, its header's longest word."""
    return [
        max([_longest_word(header), *(_longest_line(row[i]) for row in rows)])
        for i, header in enumerate(headers)
    ]


def split_columns(widths: Sequence[int], keys: int, width: int) -> list[list[int]]:
    """Indices of the non-key columns, grouped so that each group beside the key columns fits
    `width` (greedy, in order). A column that does not fit even alone gets a group of its own."""
    key_width = sum(widths[:keys]) + GAP * max(keys - 1, 0)
    groups: list[list[int]] = []
    used = key_width
    for i in range(keys, len(widths)):
        extra = widths[i] + (GAP if used else 0)
        if groups and used + extra <= width:
            groups[-1].append(i)
            used += extra
        else:
            groups.append([i])
            used = key_width + widths[i] + (GAP if key_width else 0)
    return groups or [[]]


def _table(
    title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int], right: Collection[str], note: str | None = None
) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title) if title else None,  # Text: data in titles never reaches rich's markup parser
        caption=Text(note) if note else None, caption_justify="left",
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for header, width in zip(headers, widths, strict=True):
        # Fixed widths: rich's own collapsing, when a table is too wide, crops the last columns.
        table.add_column(Text(header), justify="right" if header in right else "left", width=width, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _wrapped_width(text: str, n_lines: int) -> int:
    """The narrowest width at which `text`, wrapped at its spaces, takes at most `n_lines` lines."""
    words = text.split()
    for width in range(_longest_word(text), len(text) + 1):
        lines, used = 1, -1
        for word in words:
            if used + 1 + len(word) > width:
                lines, used = lines + 1, len(word)
            else:
                used += 1 + len(word)
        if lines <= n_lines:
            return width
    return len(text)


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]], keys: int, width: int) -> list[int]:
    """Final column widths of one part: each column's readable minimum, then what is left of
    `width` given to the headers that would otherwise wrap — first so that each takes at most
    two lines, then one (the cheapest first). A part too wide even at its minimum lets its
    non-key cells wrap at their spaces."""
    mins = column_widths(headers, rows)
    spare = width - sum(mins) - GAP * (len(mins) - 1)
    if spare < 0 and len(mins) > keys:
        fixed = sum(mins[:keys]) + GAP * (len(mins) - 1)
        longest = [max([_longest_word(headers[i]), *(_longest_word(row[i]) for row in rows)]) for i in range(keys, len(mins))]
        share = max(0, width - fixed) // (len(mins) - keys)
        return mins[:keys] + [max(word, min(m, share)) for word, m in zip(longest, mins[keys:], strict=True)]
    widths = list(mins)
    for n_lines in (2, 1):
        wanted = [max(w, _wrapped_width(h, n_lines)) for w, h in zip(widths, headers, strict=True)]
        for i in sorted(range(len(widths)), key=lambda i: wanted[i] - widths[i]):
            extra = min(max(spare, 0), wanted[i] - widths[i])
            widths[i] += extra
            spare -= extra
    return widths


def fitted_tables(
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    keys: int = 1,
    right: Collection[str] = (),
    note: str | None = None,
) -> list[Table]:
    """One table of `headers` and `rows` (strings) if it fits `width` columns, else several,
    each with the first `keys` columns and as many others as fit; titles say `(part i/k)`.
    `right`: headers of right-aligned (numeric) columns; `note`: a line under the last part
    (what its numbers are), wrapped to the table's width."""
    keys = min(keys, len(headers))
    # Split on the widths at which each header takes at most two lines: a part never crams
    # its headers into a tall stack of single words.
    planned = [max(w, _wrapped_width(h, 2)) for w, h in zip(column_widths(headers, rows), headers, strict=True)]
    groups = split_columns(planned, keys, width)
    tables = []
    for part, group in enumerate(groups, start=1):
        chosen = list(range(keys)) + group
        part_headers = [headers[i] for i in chosen]
        part_rows = [[row[i] for i in chosen] for row in rows]
        label = title if len(groups) == 1 or not title else f"{title} (part {part}/{len(groups)})"
        widths = _widths(part_headers, part_rows, keys, width)
        # A title wider than its table would wrap to the table's width: widen the last column.
        short = min(len(label or ""), width) - (sum(widths) + GAP * (len(widths) - 1))
        if short > 0:
            widths[-1] += short
        tables.append(_table(label, part_headers, part_rows, widths, right, note if part == len(groups) else None))
    return tables
