"""``sql``: a CloudEvents SQL (CESQL v1) expression, the Subscriptions API's ``sql`` dialect.

``cesql`` is the same dialect under Knative Eventing's name (``filters: [{cesql: ...}]`` in a
Knative Trigger), so a filter copied from a Trigger loads unchanged; explanations name the dialect
as the rule wrote it.

Parse errors (with line and column) and calls of unknown functions are rule-load errors. At
evaluation, CESQL's own error semantics apply: an error yields the spec's defined value, which is
never ``true`` for a failing filter, so the event does not match; the error is logged once per rule.
"""

from __future__ import annotations

import logging
from typing import Any

from router import errors
from router.model.events import CloudEvent
from router.rules import cesql
from router.rules.filters import dialect

log = logging.getLogger(__name__)


class SqlFilter:
    def __init__(self, expression: Any, path: str, dialect: str = "sql") -> None:
        self.dialect = dialect
        if not isinstance(expression, str) or not expression.strip():
            raise errors.RuleError("a CESQL expression must be a non-empty string", field=path)
        try:
            self.expression = cesql.compile(expression)
        except cesql.ParseError as exc:
            raise errors.RuleError(f"invalid CESQL: {exc}", field=path) from exc
        if self.expression.static_errors:
            raise errors.RuleError(f"invalid CESQL: {self.expression.static_errors[0]}", field=path)
        self.path = path
        self._warned = False

    def matches(self, event: CloudEvent) -> bool:
        result = self.expression.evaluate(event.attributes)
        if result.errors and not self._warned:
            self._warned = True
            log.warning("CESQL filter %s failed on event %s: %s (logged once per rule)",
                        self.path, event.id, result.errors[0])
        return result.passes_filter

    def why_not(self, event: CloudEvent) -> str:
        result = self.expression.evaluate(event.attributes)
        if result.errors:
            return f"{self.dialect}: {self.expression.source!r} failed: {result.errors[0]}"
        return f"{self.dialect}: {self.expression.source!r} evaluated to {result.value!r}"

    def pinned(self) -> dict[str, set[str]]:
        return {}


@dialect("sql")
def sql_filter(arguments: Any, path: str) -> SqlFilter:
    return SqlFilter(arguments, path)


@dialect("cesql")
def cesql_filter(arguments: Any, path: str) -> SqlFilter:
    return SqlFilter(arguments, path, "cesql")
