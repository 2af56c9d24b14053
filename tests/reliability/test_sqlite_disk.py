"""Faults of the embedded SQLite store: the disk fills up mid-sweep, or the database file
(or its directory) is read-only.

ttscale does not retry these — waiting does not free a disk — but stops with one line naming
the database file (`error: store PATH: database or disk is full`, exit code 1). SQLite's
transactions keep the file consistent: `PRAGMA integrity_check` says `ok`, the shard that
failed is not stored at all, and once there is space again the same command resumes and
finishes with every problem stored once.

The full disk is a 4 MiB tmpfs holding only the store (the test fills it while a shard
computes); where mounting is not permitted, `PRAGMA max_page_count` capped at the current
size gives SQLite the same SQLITE_FULL error path (see hook/sitecustomize.py). The read-only
file or directory is made immutable with `chattr +i` as root (root ignores permission bits),
or read-only by mode otherwise.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import TTSCALE
from tests.orchestration import env_for, migrated_store, small_spec
from tests.reliability.faults import (
    assert_stored_exactly_once,
    computed_since,
    fault_env,
    read_trace,
    sqlite_integrity,
    stored_keys,
    sweep_id_of,
    wait_mid_shard,
)


def _fill(disk: Path) -> Path:
    """Write a filler file until the disk is full; returns it."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    return filler


def _error_lines(output: str) -> list[str]:
    """The CLI's own error lines (Prefect's log lines around them carry a timestamp)."""
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_disk_full_mid_sweep_stops_in_one_line_keeps_the_file_sound_and_resumes(tmp_path: Path, small_disk, mlflow_uri, background):
    where = small_disk if small_disk is not None else tmp_path / "disk"
    db = where / "ttscale.db"
    url = migrated_store(f"sqlite:///{db}")
    flag = tmp_path / "disk-is-full"  # only read when mounting was not permitted
    spec = small_spec(tmp_path, "disk-full")
    trace = tmp_path / "trace.jsonl"
    extra = {} if small_disk is not None else {"RELIABILITY_SQLITE_FULL_FLAG": str(flag)}
    env = fault_env(env_for(tmp_path / "home", url, mlflow_uri), trace=trace, delay_s=1.0, **extra)
    proc = background.start([TTSCALE, "sweep", "run", str(spec)], env, "sweep-run")
    log = background.logs / "sweep-run.log"

    wait_mid_shard(url, trace, proc, min_stored=3, log=log)
    filler = _fill(where) if small_disk is not None else flag.touch() or flag
    stored_when_full = stored_keys(url)
    proc.wait(timeout=900)
    output = background.log(proc)
    assert proc.returncode == 1, output[-6000:]
    assert _error_lines(output) == [f"error: store {db}: database or disk is full"], output[-6000:]

    assert sqlite_integrity(db) == "ok"
    stored = stored_keys(url)
    for e in read_trace(trace):  # every shard is stored whole or not at all
        keys = {(e["cell_id"], p) for p in e["problem_ids"]}
        assert keys <= stored or not keys & stored, e
    if small_disk is not None:
        assert stored == stored_when_full  # nothing could be written once the disk was full
    else:
        assert stored >= stored_when_full  # max_page_count: writes that fit in free pages still land

    filler.unlink()  # space again
    resumed_at = time.time()
    again = subprocess.run([TTSCALE, "sweep", "run", str(spec)], env={**env, "RELIABILITY_SQLITE_FULL_FLAG": ""}, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
    assert_stored_exactly_once(url, sweep_id_of(url, "disk-full"))
    assert not set(computed_since(trace, resumed_at)) & stored  # the resumed sweep ran only what was missing
    assert sqlite_integrity(db) == "ok"


def _read_only(path: Path):
    """Make `path` read-only even for root; returns the undo, or skips where impossible."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        return lambda: path.chmod(mode)
    got = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot make {path} read-only for root here (chattr +i: {got.stderr.strip()})")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize(
    "target,error",
    [
        ("file", "error: store {db}: attempt to write a readonly database"),
        ("directory", "error: cannot connect to store sqlite:///{db}: unable to open database file"),
    ],
    ids=["file", "directory"],
)
def test_read_only_store_is_a_one_line_error_naming_the_file(target, error, tmp_path: Path, mlflow_uri):
    db = tmp_path / "store" / "ttscale.db"
    url = migrated_store(f"sqlite:///{db}")
    spec = small_spec(tmp_path, "read-only")
    env = env_for(tmp_path / "home", url, mlflow_uri)
    undo = _read_only(db if target == "file" else db.parent)
    try:
        got = subprocess.run([TTSCALE, "sweep", "run", str(spec)], env=env, capture_output=True, text=True, timeout=900)
    finally:
        undo()
    assert got.returncode == 1, got.stdout[-3000:] + got.stderr[-5000:]
    assert _error_lines(got.stderr) == [error.format(db=db)], got.stderr[-5000:]
    assert sqlite_integrity(db) == "ok"
    assert stored_keys(url) == set()
