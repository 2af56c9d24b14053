"""Reading files a user names (specs, datasets, imports) without letting them hang or flood us.

A path can name a FIFO (whose open blocks until a writer comes, forever), a device such as
`/dev/zero` (endless, no line break) or a file far larger than the data it should hold. Every
file ttscale reads on a user's say-so is opened through `open_regular`: non-blocking, then
checked to be a regular file within a size limit, and its lines read through `bounded_lines`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

MIB = 1 << 20
MAX_SPEC_BYTES = 1 * MIB
"""A sweep spec is a few hundred bytes; a megabyte of YAML is a mistake (or a grid of a million seeds)."""
MAX_DATASET_BYTES = 2048 * MIB
"""A JSONL dataset (MATH-500 is 0.4 MB; GSM8K 2 MB)."""
MAX_IMPORT_BYTES = 16 * 1024 * MIB
"""A published completions file (search-and-learn's MATH-500 runs at N=256 are a few GB)."""
MAX_LINE_BYTES = 16 * MIB
"""One problem, one JSON line."""


def open_regular(path: str | Path, what: str, *, max_bytes: int, error: type[Exception]) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file of at most `max_bytes`; else
    `error` with one line naming `what` and the reason. The open never blocks (O_NONBLOCK), so a
    FIFO is refused instead of waiting for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what}: no such file {str(path)!r}") from None
    except OSError as err:
        raise error(f"{what}: cannot read {str(path)!r}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
            raise error(f"{what}: {str(path)!r} is {kind}; give a regular file")
        if info.st_size > max_bytes:
            raise error(f"{what}: {str(path)!r} is {info.st_size / MIB:.1f} MiB, more than the {max_bytes / MIB:g} MiB allowed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | Path, what: str, *, max_bytes: int, error: type[Exception]) -> str:
    """The whole UTF-8 text of a regular file of at most `max_bytes` (`open_regular`)."""
    with open_regular(path, what, max_bytes=max_bytes, error=error) as f:
        data = f.read(max_bytes + 1)  # the file may have grown since it was checked
    if len(data) > max_bytes:
        raise error(f"{what}: {str(path)!r} is larger than the {max_bytes / MIB:g} MiB allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what}: {str(path)!r} is not UTF-8 text") from None


def bounded_lines(f: BinaryIO, what: str, *, max_line: int = MAX_LINE_BYTES, max_bytes: int, error: type[Exception]) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, decoded as UTF-8; `error` for a line longer than
    `max_line` bytes, more than `max_bytes` in all, or bytes that are not UTF-8."""
    total = 0
    lineno = 0
    while line := f.readline(max_line + 1):
        lineno += 1
        total += len(line)
        if len(line) > max_line:
            raise error(f"{what}:{lineno}: line longer than {max_line / MIB:g} MiB")
        if total > max_bytes:
            raise error(f"{what}: more than the {max_bytes / MIB:g} MiB allowed")
        try:
            yield lineno, line.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{what}:{lineno}: not UTF-8 text") from None
