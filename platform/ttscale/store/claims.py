"""Claims: which run is computing which problem, so that two runs of one cell never compute a
problem twice (docs/reliability.md, "Two runs of the same work at once").

A run claims a shard's problems before computing them (`claim_problems`), keeps its claims
alive while it computes (`extend_claims`, its heartbeat) and releases them in the transaction
that stores the shard (`release_claims` beside `write_shard`). A problem is free to claim when
nobody claims it, when its claim lapsed (`expires_at` passed: the run stopped heartbeating,
killed on another host or hung), or when its claimant was a process on this host that is gone
(a run killed here and started again need not wait for the claim to lapse). A problem claimed
by another live run is `held`: the caller defers it.

Atomic on both engines without locks of our own. On SQLite the caller's write transaction
(BEGIN IMMEDIATE) runs alone. On PostgreSQL a lapsed claim is deleted only if it is still the
row that was read (same owner and `expires_at`: a heartbeat or a faster racer changes them),
and new claims are inserted with ON CONFLICT DO NOTHING RETURNING, so of two racers one wins
each problem and the other gets nothing, without an error. A problem stored meanwhile is
found by reading `problem_runs` after the insert: its writer released its claim in the
transaction that stored it, so an insert that won saw that transaction committed.

Times come from the claimant's clock: hosts must agree to well within a claim's lifetime
(NTP does). Like every store function these take a Session or Connection and never commit.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from ttscale.store import schema
from ttscale.store.encoding import decode_text, encode_text
from ttscale.store.schema import utcnow
from ttscale.store.writer import SessionOrConnection, _insert_ignore, connection_of, done_problem_ids

_claims = schema.problem_claims


@dataclass(frozen=True)
class Claimant:
    """Who claims: `owner` is unique to one claiming run; `host` and `pid` let a run on the
    same host see that the claimant's process is gone."""

    owner: str
    host: str
    pid: int

    @classmethod
    def new(cls) -> Claimant:
        """A fresh owner in this process."""
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid())


@dataclass(frozen=True)
class ClaimResult:
    """What `claim_problems` found for the problems it was asked for."""

    claimed: frozenset[str] = field(default_factory=frozenset)
    """Now claimed by the claimant: its to compute."""
    stored: frozenset[str] = field(default_factory=frozenset)
    """Already stored: nothing to compute."""
    held: frozenset[str] = field(default_factory=frozenset)
    """Claimed by another live run: defer."""


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie (a killed process whose
    parent died too may linger as one when nothing reaps it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): it exists


def _live_for(claimant: Claimant, row: sa.Row, now: datetime) -> bool:
    """Whether `row` is another run's claim that still stands."""
    if row.owner == claimant.owner or row.expires_at <= now:
        return False
    return row.host != claimant.host or process_alive(row.pid)


def _claim_rows(conn: sa.Connection, cell_id: str, wanted: set[str]) -> list[sa.Row]:
    c = _claims.c
    rows = conn.execute(sa.select(c.problem_id, c.owner, c.host, c.pid, c.expires_at).where(c.cell_id == cell_id))
    return [row for row in rows if row.problem_id in wanted]


def claim_problems(
    db: SessionOrConnection, cell_id: str, problem_ids: Sequence[str], claimant: Claimant, *, ttl_s: float, now: datetime | None = None
) -> ClaimResult:
    """Claim for `claimant`, until `now + ttl_s`, every problem of `problem_ids` that is free
    (see the module docstring) and not stored. Lapsed claims and the claimant's own are
    replaced."""
    conn = connection_of(db)
    now = now or utcnow()
    wanted = {encode_text(pid) for pid in problem_ids}
    if not wanted:
        return ClaimResult()
    c = _claims.c
    held = set()
    for row in _claim_rows(conn, cell_id, wanted):
        if _live_for(claimant, row, now):
            held.add(row.problem_id)
        else:  # only if still the row read: a heartbeat or another claimant may have changed it since
            mine = (c.cell_id == cell_id) & (c.problem_id == row.problem_id) & (c.owner == row.owner) & (c.expires_at == row.expires_at)
            conn.execute(sa.delete(_claims).where(mine))
    expires_at = now + timedelta(seconds=ttl_s)
    rows = [
        {"cell_id": cell_id, "problem_id": pid, "owner": claimant.owner, "host": claimant.host, "pid": claimant.pid, "expires_at": expires_at}
        for pid in sorted(wanted - held)  # in key order: overlapping claimants lock rows alike and cannot deadlock
    ]
    claimed = set()
    if rows:
        insert = _insert_ignore(conn, _claims, ["cell_id", "problem_id"]).returning(c.problem_id)
        claimed = set(conn.execute(insert, rows).scalars())
    held |= wanted - held - claimed  # lost a race to a claimant of the same moment
    stored = claimed & {encode_text(pid) for pid in done_problem_ids(conn, cell_id)}
    if stored:
        conn.execute(sa.delete(_claims).where((c.cell_id == cell_id) & (c.owner == claimant.owner) & c.problem_id.in_(sorted(stored))))
    return ClaimResult(_decoded(claimed - stored), _decoded(stored), _decoded(held))


def held_problem_ids(
    db: SessionOrConnection, cell_id: str, problem_ids: Sequence[str], claimant: Claimant, *, now: datetime | None = None
) -> set[str]:
    """The problems of `problem_ids` another live run has claimed (what a caller waits for)."""
    conn = connection_of(db)
    now = now or utcnow()
    rows = _claim_rows(conn, cell_id, {encode_text(pid) for pid in problem_ids})
    return {decode_text(row.problem_id) for row in rows if _live_for(claimant, row, now)}


def extend_claims(db: SessionOrConnection, owner: str, *, ttl_s: float, now: datetime | None = None) -> int:
    """Push the expiry of every claim of `owner` to `now + ttl_s` (its heartbeat); returns how
    many it still holds (fewer than it claimed: some lapsed and were taken over)."""
    conn = connection_of(db)
    expires_at = (now or utcnow()) + timedelta(seconds=ttl_s)
    return conn.execute(sa.update(_claims).where(_claims.c.owner == owner).values(expires_at=expires_at)).rowcount


def release_claims(db: SessionOrConnection, owner: str) -> int:
    """Drop every claim of `owner` (in the transaction that stores its problems, or after it
    gave up); returns how many there were."""
    conn = connection_of(db)
    return conn.execute(sa.delete(_claims).where(_claims.c.owner == owner)).rowcount


def _decoded(ids: set[str]) -> frozenset[str]:
    return frozenset(decode_text(pid) for pid in ids)
