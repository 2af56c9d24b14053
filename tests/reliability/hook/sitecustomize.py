"""Fault-test instrumentation, loaded by every Python process a reliability test starts
(the test puts this directory first on PYTHONPATH; Python imports `sitecustomize` at startup).

It changes nothing unless one of these variables is set, and then only adds to the code
under test, after its modules load:

- `RELIABILITY_GENERATE_DELAY_S`: every `ScriptedPolicy.generate` call sleeps this long
  first, so that a shard of the scripted model lasts seconds — long enough for a test to
  strike while it runs.
- `RELIABILITY_GATE`: a file; every `ScriptedPolicy.generate` call first waits until it
  exists, so that shards started in several processes are all in flight at once when the
  test creates it.
- `RELIABILITY_TRACE`: a file; every `ttscale.runner.search_shard` call appends a JSON line
  `{"event": "start"|"end", "pid", "t", "cell_id", "problem_ids"}` (O_APPEND: lines from
  concurrent processes do not interleave). Tests read it to know a shard is in flight and
  which problems were computed when.
- `RELIABILITY_SQLITE_FULL_FLAG`: a file; while it exists, each SQLite transaction of the
  store first sets `PRAGMA max_page_count` to the database's current page count, so the
  next write that needs a new page fails with SQLITE_FULL ("database or disk is full") —
  the disk-full path where mounting a tiny tmpfs is not permitted.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import time


def _trace(event: str, cell, problems) -> None:
    path = os.environ.get("RELIABILITY_TRACE")
    if not path:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), "cell_id": cell.cell_id, "problem_ids": [p.id for p in problems]})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _patch_scripted(module) -> None:
    delay = float(os.environ.get("RELIABILITY_GENERATE_DELAY_S") or 0)
    gate = os.environ.get("RELIABILITY_GATE")
    original = module.ScriptedPolicy.generate

    def generate(self, *args, **kwargs):
        while gate and not os.path.exists(gate):
            time.sleep(0.05)
        time.sleep(delay)
        return original(self, *args, **kwargs)

    module.ScriptedPolicy.generate = generate


def _patch_runner(module) -> None:
    original = module.search_shard

    def search_shard(cell, problems, *args, **kwargs):
        problems = list(problems)
        _trace("start", cell, problems)
        outcome = original(cell, problems, *args, **kwargs)
        _trace("end", cell, problems)
        return outcome

    module.search_shard = search_shard


def _patch_engine(module) -> None:
    flag = os.environ.get("RELIABILITY_SQLITE_FULL_FLAG")
    original = module._configure_sqlite

    def configure(engine) -> None:
        original(engine)
        import sqlalchemy as sa

        @sa.event.listens_for(engine, "begin")
        def _fill(conn) -> None:  # after the BEGIN the store's own hook issued
            if flag and os.path.exists(flag):
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
                conn.exec_driver_sql(f"PRAGMA max_page_count = {int(pages)}")

    module._configure_sqlite = configure


class _PatchAfterLoad(importlib.abc.MetaPathFinder):
    def __init__(self, patches: dict) -> None:
        self.patches = patches

    def find_spec(self, name, path, target=None):
        patch = self.patches.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module) -> None:
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


_patches = {}
if os.environ.get("RELIABILITY_GENERATE_DELAY_S") or os.environ.get("RELIABILITY_GATE"):
    _patches["ttscale.backends.scripted"] = _patch_scripted
if os.environ.get("RELIABILITY_TRACE"):
    _patches["ttscale.runner"] = _patch_runner
if os.environ.get("RELIABILITY_SQLITE_FULL_FLAG"):
    _patches["ttscale.store.engine"] = _patch_engine
if _patches:
    sys.meta_path.insert(0, _PatchAfterLoad(_patches))
