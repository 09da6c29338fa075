"""Fields every log line of a unit of work carries: the run, the rule, the event, the trace.

A JSON log line is only queryable by run or rule if those are fields, not words in the message.
The engine binds them once where the work starts (the executor's task for a run, the router's task
for an event, the edge's handler for a request), in a ``ContextVar``, so every line logged inside,
by our code or a plug-in's, carries them without each call site repeating them; tasks started
inside inherit them (asyncio copies the context). A call site adds what only it knows
(``outcome``, ``duration_s``) with ``extra=``. The text format is unchanged: these are for pipelines.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterator

__all__ = ["FIELDS", "bind", "bound", "current"]

FIELDS = ("run_id", "rule", "event_id", "event_type", "delivery", "source", "outcome", "duration_s", "trace_id",
          "stage", "reporter")
"""The names JSON log lines may carry besides time, level, logger and message."""

_fields: ContextVar[dict[str, Any]] = ContextVar("trigger_router_log_fields", default={})


def _known(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields {sorted(unknown)} (known: {', '.join(FIELDS)})")
    return {name: value for name, value in fields.items() if value is not None}


def bind(**fields: Any) -> None:
    """Add ``fields`` for the rest of the current task (and the tasks it starts)."""
    _fields.set({**_fields.get(), **_known(fields)})


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` inside the ``with`` block only."""
    token = _fields.set({**_fields.get(), **_known(fields)})
    try:
        yield
    finally:
        _fields.reset(token)


def current() -> dict[str, Any]:
    return _fields.get()
