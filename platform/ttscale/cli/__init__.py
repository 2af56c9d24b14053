"""The `ttscale` command. Each sub-command lives in a module of this package that exposes
`register(app)`; this file only wires them and turns errors into one line.

Exit codes: 0 ok, 2 bad input (SpecError, DataError, a usage error), 1 a failed run; any other
exception is a bug: once the command writes a log file (`terminal.to_log_file`), the terminal
gets one line naming the exception and the log file, and the traceback goes to that file (exit
70, EX_SOFTWARE); before that, or with `-v`, the traceback stays on the terminal. What reaches
the terminal and what goes to the command's log file is `terminal`'s job.
"""

from __future__ import annotations

import sys
import traceback

import typer

from ttscale.cli import dashboard, db, export, importing, learn, listing, report, run, serve, sweep, terminal, worker
from ttscale.errors import TtscaleError

try:  # Typer 0.29 vendors click; its usage errors are not click's own classes.
    from typer._click.exceptions import ClickException as _VendoredClickException
    from typer._click.exceptions import NoArgsIsHelpError as _VendoredNoArgsIsHelp
except ImportError:  # an older Typer on real click
    from click.exceptions import ClickException as _VendoredClickException
    from click.exceptions import NoArgsIsHelpError as _VendoredNoArgsIsHelp
import click

EXIT_BUG = 70  # EX_SOFTWARE (sysexits.h): an internal error, not bad input or a failed run
USAGE_ERRORS = (_VendoredClickException, click.ClickException)
HELP_ERRORS = (_VendoredNoArgsIsHelp, click.exceptions.NoArgsIsHelpError)

app = typer.Typer(
    name="ttscale",
    help="Test-time compute scaling experiments: run strategies, store every candidate, analyse frontiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _configure(
    verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Everything on the terminal: ttscale's debug lines and the logs of vLLM, Prefect, MLflow, ... (default: those go to a log file under $TTSCALE_HOME/logs/)",
    ),
) -> None:
    """Entry points own logging (`terminal`)."""
    terminal.configure(verbose)


for _module in (listing, run, db, export, report, importing, dashboard, serve, sweep, worker, learn):
    _module.register(app)


def usage_line(err: Exception) -> str:
    """A usage error as one line: what is wrong, the command's usage, where help is."""
    message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return f"error: {message}"
    usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
    return f"error: {message} (usage: {usage}; see `{ctx.command_path} --help`)"


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except TtscaleError as err:
        print(f"error: {err}", file=terminal.stderr())
        sys.exit(err.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=terminal.stderr())
        sys.exit(130)
    except HELP_ERRORS as err:  # a group named without its command: its help, as `--help` shows it
        err.show()
        sys.exit(err.exit_code)
    except USAGE_ERRORS as err:
        print(usage_line(err), file=terminal.stderr())
        sys.exit(err.exit_code)
    except Exception as err:
        if terminal.captured():  # a bug: its traceback is for whoever debugs, in the log file
            traceback.print_exc(file=sys.stderr)  # descriptor 2 is the log file now
            name = f"{type(err).__module__}.{type(err).__qualname__}".removeprefix("builtins.")
            first = " ".join(str(err).split())[:200]
            print(f"error: unexpected {name}: {first} (a bug in ttscale; traceback in {terminal.log_path()})", file=terminal.stderr())
            sys.exit(EXIT_BUG)
        raise
