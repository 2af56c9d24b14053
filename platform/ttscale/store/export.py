"""Export one sweep to files: cells, problems, problem_runs, candidates, nodes, verdicts and
`sweep.json` (the spec as submitted, its hash, the code version), in parquet, csv or jsonl.

File names are fixed constants — nothing from a sweep's name or ids goes into a path — and
every file is written to a fresh temporary file inside `out_dir` then renamed into place, so
an export never writes outside `out_dir` (not even through a planted symlink) and a failed
one leaves no half-written file under a final name. Tables are streamed one cell at a time.
In csv, score lists are JSON text (csv has no list type).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ttscale.errors import SpecError, StoreError
from ttscale.spreadsheet import neutralise_formulas
from ttscale.store import read, schema
from ttscale.store.encoding import encode_text
from ttscale.store.provenance import code_version

FORMATS = ("parquet", "csv", "jsonl")
_SWEEP_ID = re.compile(r"[0-9a-f]{16}")

# table → (schema of its frame, reader for one cell)
_PER_CELL: dict[str, tuple[dict, Callable[[Connection, str], pl.DataFrame]]] = {
    "problem_runs": (read.PROBLEM_RUN_SCHEMA, lambda c, cell: read.read_problem_runs(c, [cell])),
    "candidates": (
        read.CANDIDATE_SCHEMA | read.CANDIDATE_TEXT_SCHEMA,
        lambda c, cell: read.read_candidates(c, [cell], with_text=True),
    ),
    "nodes": (read.NODE_SCHEMA, lambda c, cell: read.read_nodes_of_cells(c, [cell])),
    "verdicts": (read.VERDICT_SCHEMA, lambda c, cell: read.read_verdicts(c, [cell])),
}


def resolve_sweep(conn: Connection, ref: str) -> str:
    """A sweep id from an id or an exact sweep name; StoreError if none or several match."""
    s = schema.sweeps
    if _SWEEP_ID.fullmatch(ref) and conn.execute(sa.select(s.c.id).where(s.c.id == ref)).first():
        return ref
    # Names are stored encoded (`store.encoding`): one with a NUL or a lone surrogate (a name
    # passed on the command line as invalid UTF-8) is compared in its stored form.
    ids = [i for (i,) in conn.execute(sa.select(s.c.id).where(s.c.name == encode_text(ref)).order_by(s.c.created_at))]
    if not ids:
        raise StoreError(f"no sweep with id or name {ref!r}")
    if len(ids) > 1:
        raise StoreError(f"sweep name {ref!r} is ambiguous: ids {', '.join(ids)}; pass an id")
    return ids[0]


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` as CSV can hold it: lists (step scores) as JSON text, and no text cell a
    spreadsheet would run as a formula (`spreadsheet.neutralise_formulas`)."""
    lists = [k for k, v in frame.schema.items() if isinstance(v, pl.List)]
    flat = frame.with_columns(pl.col(k).map_elements(lambda v: json.dumps(v.to_list()), return_dtype=pl.String) for k in lists)
    return neutralise_formulas(flat)


class _TableFile:
    """One output table, appended frame by frame, renamed into place on `close()`."""

    def __init__(self, out_dir: Path, name: str, fmt: str, frame_schema: dict) -> None:
        self.final = out_dir / f"{name}.{fmt}"
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")  # O_EXCL: no symlink follow
        self.tmp = Path(tmp)
        os.chmod(self.tmp, 0o644)  # mkstemp makes 0600; exports are meant to be shared
        self.fh = os.fdopen(fd, "wb")
        self.fmt, self.schema, self.rows = fmt, frame_schema, 0
        self._parquet = None

    def write(self, df: pl.DataFrame) -> None:
        if self.fmt == "csv":
            csv_ready(df).write_csv(self.fh, include_header=self.fh.tell() == 0)
        elif self.fmt == "jsonl":
            df.write_ndjson(self.fh)
        else:
            import pyarrow.parquet as pq

            table = df.to_arrow()
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.fh, table.schema)
            self._parquet.write_table(table)
        self.rows += df.height

    def close(self) -> Path:
        if self.rows == 0:  # still write the header / schema
            empty = pl.DataFrame(schema=self.schema)
            if self.fmt != "jsonl":
                self.write(empty)
        if self._parquet is not None:
            self._parquet.close()
        self.fh.close()
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _output_folder(out_dir: str | Path) -> Path:
    """`out_dir` resolved and created, or a one-line SpecError naming it: a file in the way, a
    read-only or unwritable place (`/proc/...`) is the user's to fix, not a traceback."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out: {str(out_dir)!r} is a file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".ttscale-write-check.")
        probe.close()
    except OSError as err:
        raise SpecError(f"--out: cannot write to {str(out_dir)!r}: {err.strerror or type(err).__name__}") from None
    return out


def export_sweep(conn: Connection, sweep_id: str, out_dir: str | Path, fmt: str) -> list[Path]:
    """Write the sweep's tables and `sweep.json` into `out_dir` (created if missing); return
    the paths written. Existing files of an earlier export are replaced."""
    if fmt not in FORMATS:
        raise StoreError(f"export format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not _SWEEP_ID.fullmatch(sweep_id):
        raise StoreError(f"sweep id: must be 16 hex characters, got {sweep_id!r}")
    try:
        sweep = read.read_sweep(conn, sweep_id)
    except SpecError:
        raise StoreError(f"no sweep with id {sweep_id!r}") from None
    if sweep["sweep_id"] != sweep_id:  # a name or prefix matched: export takes the exact id
        raise StoreError(f"no sweep with id {sweep_id!r}")
    out = _output_folder(out_dir)

    cells = read.read_cells(conn, sweep_id)
    cell_ids = cells.get_column("cell_id").to_list()
    files: dict[str, _TableFile] = {}
    try:
        for name, frame in (("cells", cells), ("problems", read.read_problems_of_cells(conn, cell_ids))):
            files[name] = _TableFile(out, name, fmt, frame.schema)
            files[name].write(frame)
        for name, (frame_schema, _) in _PER_CELL.items():
            files[name] = _TableFile(out, name, fmt, frame_schema)
        for cell_id in cell_ids:
            for name, (_, reader) in _PER_CELL.items():
                frame = reader(conn, cell_id)
                if frame.height:
                    files[name].write(frame)
        counts = {name: f.rows for name, f in files.items()}
        written = [f.close() for f in files.values()]
    except BaseException:
        for f in files.values():
            f.abort()
        raise
    written.append(_write_manifest(out, sweep, fmt, counts))
    return written


def _write_manifest(out: Path, sweep: dict, fmt: str, counts: dict[str, int]) -> Path:
    manifest = {
        "sweep_id": sweep["sweep_id"],
        "name": sweep["name"],
        "spec": sweep["spec"],
        "spec_hash": sweep["spec_hash"],
        "code_version": sweep["code_version"],
        "created_by": sweep["created_by"],
        "created_at": sweep["created_at"].isoformat(),
        "status": sweep["status"],
        "exported_with": code_version(),
        "format": fmt,
        "files": {name: {"path": f"{name}.{fmt}", "rows": n} for name, n in counts.items()},
    }
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".sweep.", suffix=".tmp")
    os.chmod(tmp, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    final = out / "sweep.json"
    os.replace(tmp, final)
    return final
