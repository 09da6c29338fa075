"""A subscription's ``source``, ``types`` and ``filters`` as one compiled filter of the rule engine.

The Subscriptions API's filter dialects (``exact``, ``prefix``, ``suffix``, ``all``, ``any``, ``not``,
``sql``) have exactly the shape of the rule files' (``router.rules.filters`` was written to that
spec, CESQL included), so a subscription's filters are compiled by that compiler, not a second
one. This adapter adds only what differs:

- only the spec's dialects: the rules' extra ``cel`` dialect is refused here as unknown, so a
  subscription means the same to any conforming manager;
- ``source`` and ``types`` (spec §3.2.1) are filters too: the event's ``source`` must equal
  ``source``, its ``type`` one of ``types``; they go first, so the cheap comparisons reject most
  events before a CESQL expression is evaluated;
- errors name the field as a client wrote it (``filters[0].sql``), and the number of filter
  expressions, nested ones included, is bounded (``subscriptions.max_filters``).

An event matches when every filter matches (spec §3.2.4); no filters at all match every event.
"""

from __future__ import annotations

from typing import Any, Iterable

from router import errors
from router.model.events import CloudEvent
from router.rules import filters
from router.rules.filters import logical

__all__ = ["DIALECTS", "Compiled", "compile", "count"]

DIALECTS = ("all", "any", "exact", "not", "prefix", "sql", "suffix")
"""The spec's dialects: its six REQUIRED ones and the OPTIONAL ``sql`` (CESQL v1)."""
_NESTING = {"all", "any", "not"}


class Compiled:
    """What a deliverer asks of each event: ``matches(event)``."""

    def __init__(self, members: list[filters.Filter]) -> None:
        self.filter = logical.AllOf(members)

    def matches(self, event: CloudEvent) -> bool:
        return self.filter.matches(event)

    def why_not(self, event: CloudEvent) -> str:
        return self.filter.why_not(event)


def _dialects(expression: Any, path: str) -> Iterable[tuple[str, str]]:
    """(dialect, path) of ``expression`` and of everything nested in it."""
    if not isinstance(expression, dict) or len(expression) != 1:
        return  # the compiler says what is wrong with it
    (name, arguments), = expression.items()
    yield name, path
    if name in ("all", "any") and isinstance(arguments, list):
        for index, member in enumerate(arguments):
            yield from _dialects(member, f"{path}.{name}[{index}]")
    elif name == "not":
        yield from _dialects(arguments, f"{path}.not")


def count(expressions: list[Any]) -> int:
    """Filter expressions in ``expressions``, nested ones included."""
    return sum(1 for index, expression in enumerate(expressions) for _ in _dialects(expression, f"filters[{index}]"))


def compile(expressions: list[Any], *, source: str | None = None, types: list[str] | None = None,
            max_filters: int) -> Compiled:
    """The filter of a subscription; ``errors.BadRequest`` naming the field, or ``PayloadTooLarge``
    past ``max_filters`` expressions."""
    total = count(expressions)
    if total > max_filters:
        raise errors.PayloadTooLarge(f"the subscription has {total} filter expressions; at most {max_filters} are "
                                     "allowed (subscriptions.max_filters)", field="filters",
                                     limit="subscriptions.max_filters")
    for index, expression in enumerate(expressions):
        for name, path in _dialects(expression, f"filters[{index}]"):
            if name not in DIALECTS:
                raise errors.BadRequest(f"{path}.{name}: unknown filter dialect {name[:64]!r} (supported: "
                                        f"{', '.join(DIALECTS)})", field=f"{path}.{name}")
    members: list[filters.Filter] = []
    try:
        if source is not None:
            members.append(filters.compile({"exact": {"source": source}}, "source"))
        if types is not None:
            members.append(filters.compile({"any": [{"exact": {"type": t}} for t in types]}, "types"))
        members += [filters.compile(expression, f"filters[{index}]") for index, expression in enumerate(expressions)]
    except errors.RuleError as exc:
        raise errors.BadRequest(f"{exc.field}: {exc.message}", field=_client_path(exc.field)) from exc
    return Compiled(members)


def _client_path(path: str) -> str:
    """The compiler's ``types.any[1].exact.type`` is the client's ``types[1]``; other paths are theirs."""
    if path.startswith("types.any["):
        return "types[" + path.removeprefix("types.any[").split("]", 1)[0] + "]"
    if path.startswith("source."):
        return "source"
    return path
