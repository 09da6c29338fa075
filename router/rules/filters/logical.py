"""``all``, ``any`` and ``not``: combinations of nested filter expressions (Subscriptions API)."""

from __future__ import annotations

from typing import Any

from router import errors
from router.model.events import CloudEvent
from router.rules import filters
from router.rules.filters import dialect


class AllOf:
    """Every nested filter must pass; also the implicit combination of a rule's ``filters`` list."""

    def __init__(self, members: list[filters.Filter]) -> None:
        self.members = tuple(members)

    def matches(self, event: CloudEvent) -> bool:
        return all(member.matches(event) for member in self.members)

    def first_failure(self, event: CloudEvent) -> tuple[int, filters.Filter] | None:
        for index, member in enumerate(self.members):
            if not member.matches(event):
                return index, member
        return None

    def why_not(self, event: CloudEvent) -> str:
        failed = self.first_failure(event)
        return f"all[{failed[0]}]: {failed[1].why_not(event)}" if failed else "all: matched"

    def pinned(self) -> dict[str, set[str]]:
        """Pins of the members; if two members pin one attribute, the intersection."""
        merged: dict[str, set[str]] = {}
        for member in self.members:
            for key, values in member.pinned().items():
                merged[key] = merged[key] & values if key in merged else set(values)
        return merged

    def prefixes(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for member in self.members:
            found.update(getattr(member, "prefixes", dict)())
        return found


class AnyOf:
    def __init__(self, members: list[filters.Filter]) -> None:
        self.members = tuple(members)

    def matches(self, event: CloudEvent) -> bool:
        return any(member.matches(event) for member in self.members)

    def why_not(self, event: CloudEvent) -> str:
        return "any: none matched (" + "; ".join(m.why_not(event) for m in self.members) + ")"

    def pinned(self) -> dict[str, set[str]]:
        """An attribute pinned by every alternative is pinned to the union of their values."""
        pins = [member.pinned() for member in self.members]
        common = set.intersection(*(set(p) for p in pins)) if pins else set()
        return {key: set().union(*(p[key] for p in pins)) for key in common}


class Not:
    def __init__(self, member: filters.Filter) -> None:
        self.member = member

    def matches(self, event: CloudEvent) -> bool:
        return not self.member.matches(event)

    def why_not(self, event: CloudEvent) -> str:
        return "not: the nested filter matched"

    def pinned(self) -> dict[str, set[str]]:
        return {}


def _members(arguments: Any, path: str, name: str) -> list[filters.Filter]:
    if not isinstance(arguments, list) or not arguments:
        raise errors.RuleError(f"{name} takes a non-empty list of filter expressions", field=path)
    return [filters.compile(member, f"{path}[{i}]") for i, member in enumerate(arguments)]


@dialect("all")
def all_of(arguments: Any, path: str) -> AllOf:
    return AllOf(_members(arguments, path, "all"))


@dialect("any")
def any_of(arguments: Any, path: str) -> AnyOf:
    return AnyOf(_members(arguments, path, "any"))


@dialect("not")
def not_(arguments: Any, path: str) -> Not:
    return Not(filters.compile(arguments, path))
