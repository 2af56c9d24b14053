"""Alembic environment for the ttscale results store.

Called two ways:
- from the package (`ttscale db upgrade`, `ttscale.store.migrate`): the caller passes an open
  connection in `config.attributes["connection"]` and owns its transaction;
- from the `alembic` command at the repo root (alembic.ini): the URL comes from
  `-x url=...`, else TTSCALE_DATABASE_URL, else the default SQLite file, and the engine is
  built by `ttscale.store.make_engine` (same pragmas, same URL checks).

SQLite cannot ALTER most things in place, so migrations run in batch mode there.
"""

from __future__ import annotations

from alembic import context

from ttscale.store.schema import metadata

config = context.config


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from logging.config import fileConfig

    from ttscale.settings import Settings
    from ttscale.store.engine import make_engine
    from ttscale.store.migrate import migrating

    if config.config_file_name:  # the alembic command: log as alembic.ini says
        fileConfig(config.config_file_name)

    url = context.get_x_argument(as_dictionary=True).get("url") or Settings.from_env().database_url
    engine = make_engine(url, create_dirs=True)
    try:
        with migrating(engine) as conn:
            _configure(conn)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
