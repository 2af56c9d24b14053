"""One small registry class for every pluggable kind (datasets, strategies, verifiers, ...).

Implementations register by decorator where they are defined, once, under one snake_case
name; that name is what YAML, the CLI, database rows and dashboard labels all use. A miss
fails in one line naming the kind, the value, the closest match and every allowed name.

An entry may take one argument, written after a colon where the name is used
(`learned:PATH`): `register(..., argument="PATH")` declares it, `split` parses it.
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
    argument: str | None = None
    """The metavar of the argument the entry takes after `name:` (`PATH`); None: it takes none."""

    @property
    def usage(self) -> str:
        """How the entry is named: `name`, or `name:ARG` for one that takes an argument."""
        return f"{self.name}:{self.argument}" if self.argument else self.name


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str = "", *, argument: str | None = None) -> Callable[[T], T]:
        def decorator(target: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = description or (getattr(target, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, target, doc, argument)
            return target

        return decorator

    def split(self, value: str, field: str | None = None) -> tuple[Entry[T], str | None]:
        """The entry `value` names and its argument: `name` → (entry, None), `name:ARG` →
        (entry, "ARG") for an entry that takes one. SpecError (one line) for an unknown name,
        a missing or empty argument, or an argument given to an entry that takes none."""
        where = f"{field}: " if field else ""
        if value in self._entries:
            entry = self._entries[value]
            if entry.argument:
                raise SpecError(f"{where}{self.kind} {value!r} takes an argument: write {entry.usage}")
            return entry, None
        name, colon, arg = value.partition(":")
        if colon and name in self._entries:
            entry = self._entries[name]
            if not entry.argument:
                raise SpecError(f"{where}{self.kind} {name!r} takes no argument, got {value!r}")
            if not arg.strip():
                raise SpecError(f"{where}{self.kind} {name!r} needs its {entry.argument} after the colon: {entry.usage}")
            return entry, arg
        raise SpecError(self.unknown_message(value, field))

    def get(self, name: str, field: str | None = None) -> T:
        try:
            return self._entries[name].target
        except KeyError:
            raise SpecError(self.unknown_message(name, field)) from None

    def unknown_message(self, name: object, field: str | None = None) -> str:
        allowed = [self._entries[k].usage for k in sorted(self._entries)]
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
