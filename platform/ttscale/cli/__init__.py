"""The `ttscale` command. Each sub-command lives in a module of this package that exposes
`register(app)`; this file only wires them and turns TtscaleError into a one-line message.

Exit codes: 0 ok, 2 bad input (SpecError, DataError), 1 a failed run; any other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from ttscale.errors import TtscaleError

app = typer.Typer(
    name="ttscale",
    help="Test-time compute scaling experiments: run strategies, store every candidate, analyse frontiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging")) -> None:
    """Entry points own logging: ttscale's library loggers go to stderr, one line each."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("ttscale")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _register_all() -> None:
    # One import line per sub-command module; each module keeps its heavy imports inside its commands.
    from ttscale.cli import dashboard, db, export, importing, listing, report, run, sweep, worker

    for module in (listing, run, db, export, report, importing, dashboard, sweep, worker):
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except TtscaleError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # click usage errors carry their own exit code
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
