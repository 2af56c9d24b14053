"""Secrets out of anything ttscale shows: every URL is printed, logged, tagged and displayed
through `redact_url` (one URL) or `redact_urls` (free text that may hold URLs).

Both forms of password a database URL can carry are masked: the userinfo password
(`user:SECRET@host`, even when it holds an unencoded `@`: the userinfo runs to the *last* `@`
before the host, since a host never contains one) and query parameters that carry secrets
(`?password=SECRET`, as libpq and psycopg accept). Works on text that does not parse as a URL,
so an error message about a malformed URL cannot leak either. Pure string code: the store's
SQLAlchemy URL objects are rendered (password included) and then masked here.
"""

from __future__ import annotations

import re
from typing import Protocol

MASK = "***"
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pass", "pwd", "secret", "token", "api_key", "apikey", "sslpassword"})
"""Query parameters whose values are masked (case-insensitive)."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


class _RenderableURL(Protocol):
    def render_as_string(self, hide_password: bool = ...) -> str: ...


def redact_url(url: str | _RenderableURL) -> str:
    """`url` with its userinfo password and secret query values replaced by `***`."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    scheme = _SCHEME.match(text)
    if scheme is None:
        return _mask_query(text)
    # Secret query values first: one holding `@` (`?password=p@ss`) must not be taken for the
    # end of the userinfo below, which would show what follows that `@`.
    head, rest = text[: scheme.end()], _mask_query(text[scheme.end() :])
    # The last `@` ends the userinfo (a password may hold `@`, `/` or `?`); if it stood in a
    # non-secret query value instead, this over-masks, which is the safe way to be wrong.
    at = rest.rfind("@")
    if at > 0 and not rest.startswith("/"):
        user, colon, _ = rest[:at].partition(":")
        if colon and "/" not in user:
            rest = f"{user}:{MASK}{rest[at:]}"
    return head + rest


def _mask_query(text: str) -> str:
    def mask(m: re.Match[str]) -> str:
        sep, key, _ = m.groups()
        return f"{sep}{key}={MASK}" if key.lower() in SECRET_QUERY_KEYS else m.group(0)

    return _QUERY_PAIR.sub(mask, text)


def redact_urls(text: str) -> str:
    """Free text with every URL in it redacted (`redact_url`)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def store_label(url: str) -> str:
    """What a dashboard viewer may see of a store URL: the backend, the database's name and
    whether the connection is read-only (`postgresql · ttscale`, `sqlite · ttscale.db · read-only`)
    — no user, host, path or secret."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "store"
    backend = url[: scheme.end() - 3].split("+")[0] or "store"
    tail, _, query = url[scheme.end() :].partition("?")
    tail = tail.rstrip("/")
    name = tail.rsplit("/", 1)[-1] if "/" in tail else ""
    if name.startswith("file:"):  # sqlite:///file:PATH?mode=ro&uri=true
        name = name.rsplit("/", 1)[-1].removeprefix("file:")
    label = f"{backend} · {name}" if name and "@" not in name and ":" not in name else backend
    read_only = re.search(r"(?:^|&)mode=ro(?:&|$)", query) is not None
    return label + (" · read-only" if read_only else "")
