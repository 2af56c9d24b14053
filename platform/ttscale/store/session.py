"""The one way an edge opens the store: `opened(url)` (a context manager) or `open_engine(url)`.

The CLI, the Prefect flows and the dashboard all get their engine here, checked reachable and at
the migrations' head before any work starts, with the store's retry policy riding out an outage
while connecting (`engine.retrying`). The embedded SQLite store creates and migrates itself on
first use — a new or empty file becomes a store at the head revision — so `ttscale run` right
after setup works; a PostgreSQL store, shared by a team, is only ever upgraded on purpose
(`ttscale db upgrade`), and an existing SQLite store at an older revision is refused the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.engine import Engine

from ttscale.errors import StoreError
from ttscale.store.engine import connect, make_engine, retrying, sqlite_path
from ttscale.store.migrate import check_reachable_and_migrated, current_revision, upgrade


def open_engine(url: str, *, create_embedded: bool = True) -> Engine:
    """An Engine on `url`, checked reachable and migrated (StoreError in one line if not).
    With `create_embedded`, an empty SQLite store is created and migrated first; without it (the
    commands that only read), a missing SQLite file is an error and is not created."""
    engine = make_engine(url, create_dirs=create_embedded)
    path = sqlite_path(engine.url)
    if not create_embedded and path is not None and not path.expanduser().is_file():
        engine.dispose()
        raise StoreError(f"no SQLite store at {path}: a run creates it (or `ttscale db upgrade`)")
    try:
        if create_embedded and sqlite_path(engine.url) is not None:
            _create_if_empty(engine)
        retrying(engine, lambda: check_reachable_and_migrated(engine), what="connecting to the store")
    except BaseException:
        engine.dispose()
        raise
    return engine


def _create_if_empty(engine: Engine) -> None:
    with connect(engine) as conn:
        empty = current_revision(conn) is None
    if empty:
        upgrade(engine)


@contextlib.contextmanager
def opened(url: str, *, create_embedded: bool = True) -> Iterator[Engine]:
    """`open_engine(url)` for the length of a block; its connections are closed after it."""
    engine = open_engine(url, create_embedded=create_embedded)
    try:
        yield engine
    finally:
        engine.dispose()
