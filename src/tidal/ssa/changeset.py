"""What an apply or a prune did to each object, in Flux's words."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tidal.ssa.objects import subject


class Action(enum.StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Entry:
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    action: Action

    @property
    def subject(self) -> str:
        return subject(self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.subject} {self.action}"


@dataclass(slots=True)
class ChangeSet:
    entries: list[Entry] = field(default_factory=list)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def extend(self, entries: Iterable[Entry]) -> None:
        self.entries.extend(entries)

    def lines(self, *actions: Action) -> list[str]:
        return [str(e) for e in self.entries if not actions or e.action in actions]

    def changed(self) -> bool:
        return any(e.action in (Action.CREATED, Action.CONFIGURED) for e in self.entries)

    def summary(self) -> str:
        """Newline-joined created/configured lines, the body of Flux's change event."""
        return "\n".join(self.lines(Action.CREATED, Action.CONFIGURED))
