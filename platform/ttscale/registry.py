"""One small registry class for every pluggable kind (datasets, strategies, verifiers, ...).

Implementations register by decorator where they are defined, once, under one snake_case
name; that name is what YAML, the CLI, database rows and dashboard labels all use. A miss
fails in one line naming the kind, the value, the closest match and every allowed name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ttscale.errors import SpecError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    target: T
    description: str


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def decorator(target: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = description or (getattr(target, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, target, doc)
            return target

        return decorator

    def get(self, name: str, field: str | None = None) -> T:
        try:
            return self._entries[name].target
        except KeyError:
            raise SpecError(self.unknown_message(name, field)) from None

    def unknown_message(self, name: object, field: str | None = None) -> str:
        allowed = sorted(self._entries)
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f"{field}: " if field else ""
        return f"{where}unknown {self.kind} {name!r}{hint}; allowed: {', '.join(allowed)}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))
