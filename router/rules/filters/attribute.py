"""``exact``, ``prefix`` and ``suffix``: string comparisons of context attributes.

Subscriptions API §3.2.4.1.1: keys are attribute names (extensions included), values non-empty
strings, every listed attribute must be present and match (case-sensitive). The three dialects
differ only in the comparison, so they share one class.
"""

from __future__ import annotations

from typing import Any, Callable

from router import errors
from router.model.events import CloudEvent
from router.rules.filters import dialect


def _canonical(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class AttributeFilter:
    def __init__(self, name: str, verb: str, compare: Callable[[str, str], bool], arguments: Any, path: str) -> None:
        if not isinstance(arguments, dict) or not arguments:
            raise errors.RuleError(f"{name} takes a map of attribute name to string", field=path)
        for key, value in arguments.items():
            if not isinstance(key, str) or not key:
                raise errors.RuleError("attribute names must be non-empty strings", field=path)
            if not isinstance(value, str) or not value:
                raise errors.RuleError(f"the value for {key!r} must be a non-empty string", field=f"{path}.{key}")
        self.name, self.verb, self.compare = name, verb, compare
        self.expected: tuple[tuple[str, str], ...] = tuple(arguments.items())

    def matches(self, event: CloudEvent) -> bool:
        attributes = event.attributes
        for key, wanted in self.expected:
            actual = attributes.get(key)
            if actual is None or not self.compare(_canonical(actual), wanted):
                return False
        return True

    def why_not(self, event: CloudEvent) -> str:
        for key, wanted in self.expected:
            actual = event.attributes.get(key)
            if actual is None:
                return f"{self.name}: attribute {key!r} is absent"
            if not self.compare(_canonical(actual), wanted):
                return f"{self.name}: {key} {_canonical(actual)!r} does not {self.verb} {wanted!r}"
        return f"{self.name}: matched"

    def pinned(self) -> dict[str, set[str]]:
        return {key: {value} for key, value in self.expected} if self.name == "exact" else {}

    def prefixes(self) -> dict[str, str]:
        return dict(self.expected) if self.name == "prefix" else {}


@dialect("exact")
def exact(arguments: Any, path: str) -> AttributeFilter:
    return AttributeFilter("exact", "equal", str.__eq__, arguments, path)


@dialect("prefix")
def prefix(arguments: Any, path: str) -> AttributeFilter:
    return AttributeFilter("prefix", "start with", str.startswith, arguments, path)


@dialect("suffix")
def suffix(arguments: Any, path: str) -> AttributeFilter:
    return AttributeFilter("suffix", "end with", str.endswith, arguments, path)
