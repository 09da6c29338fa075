"""``cel``: a CEL expression over the whole event, data included.

``rules test`` shows a non-matching result as a CEL literal (``false``, ``null``, ``"main"``:
``celvalues``), the way the rule author wrote the expression.

An expression that fails at evaluation time (a missing field, a type mismatch) counts as no match
and is logged once per rule, not once per event, so a bad rule cannot flood the log.
"""

from __future__ import annotations

import logging
from typing import Any

from router.model.events import CloudEvent
from router.rules import celexpr, celvalues
from router.rules.filters import dialect

log = logging.getLogger(__name__)


class CelFilter:
    def __init__(self, expression: Any, path: str) -> None:
        self.program = celexpr.compile(expression, path)
        self.source = expression
        self.path = path
        self._warned = False

    def _result(self, event: CloudEvent) -> tuple[bool, str]:
        try:
            value = celexpr.evaluate(self.program, event)
        except ValueError as exc:
            if not self._warned:
                self._warned = True
                log.warning("CEL filter %s (%s) failed on event %s and counts as no match: %s "
                            "(logged once per rule)", self.path, self.source, event.id, exc)
            return False, f"cel: evaluation error: {exc}"
        if value is True:
            return True, "cel: matched"
        return False, f"cel: {self.source!r} evaluated to {celvalues.literal(value)}"

    def matches(self, event: CloudEvent) -> bool:
        return self._result(event)[0]

    def why_not(self, event: CloudEvent) -> str:
        return self._result(event)[1]

    def pinned(self) -> dict[str, set[str]]:
        return {}


@dialect("cel")
def cel_filter(arguments: Any, path: str) -> CelFilter:
    return CelFilter(arguments, path)
