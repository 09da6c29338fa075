"""Filter dialects: the CloudEvents Subscriptions API set (exact, prefix, suffix, all, any, not) plus
``cel`` and ``sql`` (also spelt ``cesql``, Knative's name), behind one small interface.

A compiled filter answers ``matches(event)`` on the hot path and, only when asked by ``rules test``,
``why_not(event)``: a sentence naming the first thing that rejected the event. Dialects register
themselves by name, so a new dialect is one module plus one import line below.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from router import errors
from router.model.events import CloudEvent


class Filter(Protocol):
    def matches(self, event: CloudEvent) -> bool: ...

    def why_not(self, event: CloudEvent) -> str:
        """Why ``matches`` is false for ``event`` (only called when it is)."""
        ...

    def pinned(self) -> dict[str, set[str]]:
        """Attributes this filter requires to equal one of a few values (for indexing), e.g.
        ``{"type": {"com.github.push"}}``; empty when it pins nothing."""
        ...


Compiler = Callable[[Any, str], Filter]
DIALECTS: dict[str, Compiler] = {}


def dialect(name: str) -> Callable[[Compiler], Compiler]:
    def register(compiler: Compiler) -> Compiler:
        DIALECTS[name] = compiler
        return compiler

    return register


def compile(expression: Any, path: str) -> Filter:
    """One filter expression ``{"<dialect>": <arguments>}``; ``path`` names it in errors."""
    if not isinstance(expression, dict) or len(expression) != 1:
        raise errors.RuleError("a filter must be an object with exactly one dialect key, e.g. "
                               "{exact: {type: com.example}}", field=path)
    (name, arguments), = expression.items()
    compiler = DIALECTS.get(name)
    if compiler is None:
        raise errors.RuleError(f"unknown filter dialect {name!r} (known: {', '.join(sorted(DIALECTS))})",
                               field=f"{path}.{name}")
    return compiler(arguments, f"{path}.{name}")


from router.rules.filters import attribute, cel, logical, sql  # noqa: E402,F401  (registration by import)
