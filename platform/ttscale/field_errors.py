"""One line per problem of a pydantic ValidationError, naming the field as written in the file.

Shared by the files a user writes — sweep specs (`ttscale.spec`) and policy files
(`ttscale.policy`): `strategies[0].beam_width: must divide n=16, got 5`. Keys and values from
the file are escaped (`one_line`), so they can neither split an error line nor drive the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pydantic import ValidationError


def format_validation_error(err: ValidationError, prefix: str = "", union_tags: Collection[str] = ()) -> str:
    """One line per problem: `field.path: message, got value`. `union_tags` are the tags of the
    discriminated unions in the model (strategy names): pydantic puts them in a field's path."""
    lines = []
    for e in err.errors():
        loc = _field_path(e["loc"], union_tags)
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or e["type"] == "missing" or msg.endswith(str(got)) else f", got {short(repr(got))}"
        # Model-level checks already name their field in the message.
        line = f"{loc}: {msg}{shown}" if loc else msg
        lines.append(prefix + one_line(line))
    return "\n".join(lines)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def _field_path(loc: tuple, union_tags: Collection[str]) -> str:
    """`strategies[0].beam_width` from pydantic's ('strategies', 0, 'beam_search', 'beam_width'):
    the discriminator tag pydantic inserts after a union's index (or as a union field's first
    part) is dropped; a key that is not a plain name (empty, spaces, a number) is shown quoted in
    brackets: `['my key']`, `[1]`."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in union_tags and i >= 1 and (isinstance(loc[i - 1], int) or loc[i - 1] == "strategy"):
            continue
        elif _NAME.fullmatch(part):
            out += ("." if out else "") + part
        else:
            out += f"[{short(repr(part), 60)}]"
    return out


_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str, limit: int = 500) -> str:
    """`text` with control characters (line breaks, terminal escapes) written as escapes, so a
    key or value from a file can neither split an error line nor drive the terminal; cut at
    `limit` characters."""
    return short(_CONTROL.sub(lambda m: repr(m.group())[1:-1], text), limit)


def short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
