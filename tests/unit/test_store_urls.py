"""Store URLs: normalised, checked before connecting, and never shown with their password."""

from __future__ import annotations

import re

import pytest

from ttscale.errors import StoreError
from ttscale.store.engine import make_engine, parse_url, redact_url
from ttscale.store.provenance import code_version


@pytest.mark.parametrize(
    "url,expected",
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql+psycopg://u:p%40w@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql+psycopg://u:pw@", "postgresql+psycopg://u:***@"),
        ("postgresql+psycopg://u:p@w@h:bad/db", "postgresql+psycopg://u:***@h:bad/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql+psycopg://u@h:5432/db?password=SECRET", "postgresql+psycopg://u@h:5432/db?password=***"),
        # a query password holding `@` is masked before the userinfo is looked for
        ("postgresql+psycopg://u:p@ss@SECRET@h/db?password=p@ssSECRET&sslmode=require",
         "postgresql+psycopg://u:***@h/db?password=***&sslmode=require"),
    ],
)
def test_redaction_hides_the_password_even_in_malformed_urls(url, expected):
    assert redact_url(url) == expected


def test_bare_postgresql_means_psycopg3():
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u:pw@h/db", "postgresql+psycopg2://u:pw@h/db", "notadb://x", "oracle://"])
def test_unsupported_schemes_are_refused_before_connecting(url):
    with pytest.raises(StoreError, match="unsupported scheme") as info:
        make_engine(url)
    assert "pw" not in str(info.value)


def test_code_version_starts_with_the_package_version():
    import ttscale

    assert re.fullmatch(re.escape(ttscale.__version__) + r"(\+g[0-9a-f]{12}(\.dirty)?)?", code_version())
