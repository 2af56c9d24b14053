"""What reaches the terminal, and where the rest goes: one log file per command.

By default a command prints only ttscale's own lines: its output (`context.console`), its
errors, and ttscale's warnings (`warning: ...`). Once a command starts work that brings up
engines and services (`to_log_file`: `ttscale run`, `sweep run`, ...), ttscale's INFO lines
and everything the libraries under it say go to `$TTSCALE_HOME/logs/<command>-<date>-<time>.log`,
whose path is printed once:

- Python logging: a file handler on the root logger and on `ttscale`; warnings are captured
  into logging. (Prefect leaves a root logger alone when it already has a handler with a
  formatter, so its console handler does not take the root over.)
- Everything written to file descriptors 1 and 2 — vLLM's engine processes, C++ warnings,
  tqdm bars, and the libraries' own console handlers, which write to `sys.stdout` and
  `sys.stderr` — by pointing those descriptors at the log file for the rest of the process
  (children inherit them; restoring them would let exit-time lines such as Prefect stopping
  its server through). ttscale keeps the terminal through duplicates of the original
  descriptors: `stdout()` and `stderr()`, which every CLI printer uses.

`-v`/`--verbose` keeps the old behaviour: everything on the terminal, ttscale's DEBUG lines
included, and no log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("httpx", "httpcore")
"""Loggers held at WARNING even in the log file: one INFO line per Prefect API request."""


@dataclass
class _State:
    verbose: bool = False
    out: TextIO | None = None
    """The terminal's stdout once descriptor 1 points at the log file; None before."""
    err: TextIO | None = None
    log_path: Path | None = None
    file_handler: logging.Handler | None = None
    live: Console | None = None
    """The console of a live progress display: log lines print above it, not through it."""


_state = _State()


class _Terminal:
    """The terminal's stdout or stderr, wherever descriptors 1 and 2 point now: a console made
    before `to_log_file` keeps printing to the terminal after it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def _target(self) -> TextIO:
        if self._fd == 1:
            return _state.out or sys.stdout
        return _state.err or sys.stderr

    def __getattr__(self, name: str) -> object:  # write, flush, isatty, fileno, encoding, ...
        return getattr(self._target(), name)


_STDOUT, _STDERR = _Terminal(1), _Terminal(2)


def stdout() -> TextIO:
    """Where ttscale's output goes: the terminal (or whatever stdout is, before `to_log_file`)."""
    return _STDOUT  # type: ignore[return-value]


def stderr() -> TextIO:
    return _STDERR  # type: ignore[return-value]


def width_of(stream: TextIO) -> int:
    """Columns to lay text out in for `stream`: `COLUMNS` if set (as rich reads it), else the
    terminal's width, else 80 (piped, a file, CI)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 80
    except (AttributeError, OSError, ValueError):
        return 80


class _TerminalHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if _state.live is not None:
                from rich.text import Text

                _state.live.print(Text(line))
            else:
                stream = stderr()
                stream.write(line + "\n")
                stream.flush()
        except Exception:  # noqa: BLE001 - logging's contract: a handler never raises
            self.handleError(record)


class _PlainFormatter(logging.Formatter):
    """`warning: message`: a line for the user; the traceback, if any, is in the log file."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure(verbose: bool) -> None:
    """ttscale's loggers for this command: `verbose`, every ttscale line (DEBUG up) on stderr;
    otherwise only warnings and errors, as `warning: ...` (INFO lines wait for a log file)."""
    _state.verbose = verbose
    if _state.file_handler is not None and not captured():  # an earlier command in this process (tests call `main` in-process)
        logging.getLogger().removeHandler(_state.file_handler)
        _state.file_handler.close()
        _state.file_handler = _state.log_path = None
    handler = _TerminalHandler(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter(FILE_FORMAT, "%H:%M:%S") if verbose else _PlainFormatter())
    logger = logging.getLogger("ttscale")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Printed here once: Prefect's console handler on the root must not print them again (they
    # still reach the run logs through the handler PREFECT_LOGGING_EXTRA_LOGGERS adds).
    logger.propagate = False


def log_path_for(logs: Path, command: str, now: float | None = None) -> Path:
    """`logs/<command>-YYYYmmdd-HHMMSS.log`, with `-2`, `-3`, ... if that name is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = logs / f"{command}-{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = logs / f"{command}-{stamp}-{n}.log"
    return path


def to_log_file(home: Path, command: str) -> Path | None:
    """From now on, send everything but ttscale's own lines to a new log file under
    `home/logs/` and print its path once; returns it (None with `--verbose`). Called by
    commands before they import Prefect, vLLM or MLflow; a second call changes nothing."""
    if _state.verbose:
        return None
    if _state.log_path is not None:
        return _state.log_path
    path = log_path_for(home / "logs", command)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ttscale").addHandler(handler)
    logging.captureWarnings(True)
    _descriptors_to(path)
    _state.log_path, _state.file_handler = path, handler
    stream = stderr()
    stream.write(f"log: {path}\n")
    stream.flush()
    return path


def _descriptors_to(path: Path) -> None:
    """Point descriptors 1 and 2 at `path`, keeping the terminal in `_state.out`/`_state.err`.
    Only when `sys.stdout`/`sys.stderr` are the process's own descriptors (not when ttscale is
    called in-process with other streams): then only Python logging goes to the file."""
    try:
        if sys.stdout.fileno() != 1 or sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # os.dup's copies are not inherited: engine processes cannot reach the terminal.
    _state.out = _reopen(1, sys.stdout)
    _state.err = _reopen(2, sys.stderr)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _reopen(fd: int, like: TextIO) -> TextIO:
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding=like.encoding or "utf-8", errors=like.errors or "strict")


def captured() -> bool:
    """Whether descriptors 1 and 2 point at the log file (what Python prints there is not seen)."""
    return _state.out is not None


def log_path() -> Path | None:
    """This command's log file, once `to_log_file` opened one."""
    return _state.log_path


@contextlib.contextmanager
def live_display(console: Console) -> Iterator[None]:
    """While a live display draws on `console`, ttscale's log lines print through it."""
    _state.live = console
    try:
        yield
    finally:
        _state.live = None
