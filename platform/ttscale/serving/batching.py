"""Batching requests across concurrent clients: a queue and one worker thread.

Each request is submitted with a key — the cell it needs (strategy, parameters, budget,
sampling) — and gets a future. The worker takes the oldest pending request together with every
other pending request of its key (at most `max_batch`) and answers them with one call of `run`:
one batched search, as a sweep's shard is. Requests that arrive while a search runs wait for it
and go together in the next one, so batches grow with load and nothing waits on a timer; keys
take turns by their oldest request, so no key starves. One search at a time: the engine is one.

A batch whose `run` raises is retried one request at a time, so a request the engine refuses
(say, a prompt longer than its context) fails alone rather than with everything batched beside
it. A request whose future was cancelled (its client went away) before its batch started is
dropped from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The server is shutting down: the request was not answered."""


@dataclass
class _Pending(Generic[T, R]):
    key: Hashable
    item: T
    future: Future[R] = field(default_factory=Future)


class Batcher(Generic[T, R]):
    """Answers submitted items in batches of one key with `run(items) -> results` (same order)."""

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 32, name: str = "ttscale-serve-batcher") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run = run
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Pending[T, R]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.batch_sizes: list[int] = []
        """The size of every batch `run` was called with, in order (a retried batch adds its ones)."""

    def start(self) -> None:
        """Start the worker (items submitted before wait for it)."""
        self._thread.start()

    def submit(self, key: Hashable, item: T) -> Future[R]:
        """Queue `item` under `key`; its future holds `run`'s result for it, or the error."""
        pending: _Pending[T, R] = _Pending(key, item)
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._pending.append(pending)
            self._cond.notify_all()
        return pending.future

    @property
    def n_pending(self) -> int:
        """Items queued and not yet taken into a batch."""
        with self._cond:
            return len(self._pending)

    def wait_pending(self, count: int, timeout_s: float) -> bool:
        """Block until at least `count` items are queued (not yet taken); False after `timeout_s`."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._pending) >= count, timeout=timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop taking batches: queued items fail with BatcherClosed; the batch running now is
        finished and answered, waited for up to `timeout_s` (None: not waited for)."""
        with self._cond:
            self._closed = True
            dropped, self._pending = self._pending, []
            self._cond.notify_all()
        for pending in dropped:
            if pending.future.set_running_or_notify_cancel():
                pending.future.set_exception(BatcherClosed("the server shut down before answering"))
        if timeout_s is not None and self._thread.is_alive():
            self._thread.join(timeout_s)

    def _take(self) -> list[_Pending[T, R]] | None:
        """The next batch (the oldest item's key), or None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._closed)
            if self._closed:
                return None
            key = self._pending[0].key
            batch = [p for p in self._pending if p.key == key][: self.max_batch]
            taken = {id(p) for p in batch}
            self._pending = [p for p in self._pending if id(p) not in taken]
            self._cond.notify_all()
        return [p for p in batch if p.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            if batch:
                self._answer(batch, retry_alone=len(batch) > 1)

    def _answer(self, batch: list[_Pending[T, R]], *, retry_alone: bool) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = self._run([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} answered with {len(results)} results")
        except Exception as err:  # noqa: BLE001 - every request gets the error (or its own retry)
            if retry_alone:
                logger.warning("batch of %d failed (%s); answering its requests one at a time", len(batch), err)
                for pending in batch:
                    self._answer([pending], retry_alone=False)
                return
            batch[0].future.set_exception(err)
            return
        for pending, result in zip(batch, results, strict=True):
            pending.future.set_result(result)
