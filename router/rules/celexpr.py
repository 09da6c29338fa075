"""CEL, the expression language of ``cel`` filters and ``{{ }}`` templates.

Expressions are compiled once, when rules load. At evaluation they see:

- ``event``: a map of every context attribute (extensions included) plus ``data``;
- ``data``: the event's data parsed as JSON (``null`` if absent or not JSON);
- each present attribute as a top-level variable (``type``, ``source``, ``subject``, ...);
- in a correlated run, ``events``: each joined event by requirement name, shaped like ``event``.

Optional attributes should be tested with ``has(event.subject)``: referring to an absent top-level
variable is an evaluation error. Building the variables (converting the JSON payload into CEL
values, the expensive part) is done once per event into a ``cel.Context`` shared by every
expression evaluated for it: about 1 µs per expression instead of 60 µs.

Besides CEL's own functions, expressions can call ``digest(value)``: the canonical ``sha256:<hex>``
named by a bare or ``sha256%3A`` digest, a purl or an image reference (``references.digest``, the
parser the actions use), and an evaluation error for anything else, so that correlation and policy
keys compare digests however each event spells them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import cel

from router import errors
from router.model import references
from router.model.events import CloudEvent

_cache: tuple[CloudEvent | None, "_Variables | None"] = (None, None)


REGISTERED = {"digest": references.digest}
"""Functions trigger-router adds to the engine, registered on every context ``variables`` builds."""

FUNCTIONS = frozenset({
    "bytes", "contains", "digest", "double", "duration", "dyn", "endsWith", "getDate", "getDayOfMonth",
    "getDayOfWeek", "getDayOfYear", "getFullYear", "getHours", "getMilliseconds", "getMinutes", "getMonth",
    "getSeconds", "int", "matches", "size", "startsWith", "string", "timestamp", "type", "uint",
})
"""The functions the CEL engine provides, ``REGISTERED`` included (macros such as ``has``, ``all``,
``exists``, ``map`` and ``filter`` are expanded by the parser and are not calls). The engine resolves
a call only when it is evaluated, so a misspelt ``startswith`` would load and then fail on every
matching event; checking the names at load turns that into a rule error.
``tests/unit/router/rules/test_hostile_rules.py`` probes the contexts ``variables`` builds for each
of these names, so an upgrade that drops one is noticed."""

_FAILED = re.compile(r"^Function '(\w+)' error: Python function call failed: \w+: (.*?)\.? "
                     r"Check function arguments and their types\.$")
"""How the binding reports an exception raised by a registered function (unwrapped by ``evaluate``)."""


class _ReportedElsewhere(logging.Filter):
    """The binding also logs every failure of a registered function as a warning of the ``cel`` logger.

    That failure is an evaluation error like any other, reported where it is handled (a filter logs
    it once per rule, a template ends the run ``error``); a line per event would flood the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Python function '{name}' failed") for name in REGISTERED)


logging.getLogger("cel").addFilter(_ReportedElsewhere())

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # operators are named like `_+_`, `!_`, `@in`


def compile(expression: str, path: str) -> "cel.Program":
    if not isinstance(expression, str) or not expression.strip():
        raise errors.RuleError("a CEL expression must be a non-empty string", field=path)
    try:
        program = cel.compile(expression)
    except ValueError as exc:
        # The library's message ends with a caret diagram; the first lines carry the position.
        message = " ".join(str(exc).replace("Failed to parse expression", "invalid CEL").split("\n| ")[0].split())
        raise errors.RuleError(message, field=path) from exc
    unknown = sorted(name for name in program.functions() if _IDENTIFIER.match(name) and name not in FUNCTIONS)
    if unknown:
        raise errors.RuleError(f"unknown CEL function {', '.join(f'{name}()' for name in unknown)} "
                               f"(known: {', '.join(sorted(FUNCTIONS))})", field=path)
    return program


def values(event: CloudEvent) -> dict[str, Any]:
    """The variables as plain Python values (``variables`` is their compiled, cached form)."""
    try:
        data = event.json() if event.is_json() else None
    except errors.BadRequest:
        data = None
    attributes = dict(event.attributes)
    return {**attributes, "event": {**attributes, "data": data}, "data": data}


def _context(variables: dict[str, Any]) -> "cel.Context":
    context = cel.Context()
    for name, function in REGISTERED.items():
        context.add_function(name, function)
    context.update(variables)
    return context


class _Variables:
    """One event's CEL context, filled a variable at a time as programs need them.

    Handing a value to the engine converts it whole: about 40 µs for a small event's variables, and
    for a 7 KB GitHub push about 390 µs per copy of ``data`` (which is there twice, as ``data`` and
    ``event.data``, so 715 µs for the lot). Most programs read one or two variables
    (``Program.variables()`` names them), so each is converted once, on first use, and never if no
    program of the event's rules reads it."""

    __slots__ = ("event", "extra", "values", "context", "added")

    def __init__(self, event: CloudEvent, extra: dict[str, Any] | None) -> None:
        self.event, self.extra = event, extra
        self.values: dict[str, Any] | None = None
        self.context = _context({})
        self.added: set[str] = set()

    def for_program(self, program: "cel.Program") -> "cel.Context":
        missing = [name for name in _names(program) if name not in self.added]
        if missing:
            if self.values is None:
                self.values = {**values(self.event), **(self.extra or {})}
            self.context.update({name: self.values[name] for name in missing if name in self.values})
            self.added.update(missing)
        return self.context


_NAMES: dict[Any, tuple[str, ...]] = {}


def _names(program: "cel.Program") -> tuple[str, ...]:
    """``program.variables()``, asked once per program (the dict holds the program, so its identity
    is not reused); emptied when rule reloads have filled it with programs no longer used."""
    names = _NAMES.get(program)
    if names is None:
        if len(_NAMES) >= 50_000:
            _NAMES.clear()
        names = _NAMES[program] = tuple(program.variables())
    return names


def variables(event: CloudEvent, extra: dict[str, Any] | None = None) -> _Variables:
    """The event's variables: cached for the last event seen (its rules are evaluated one after the
    other), built afresh when ``extra`` is given (a correlated run's templates: rare)."""
    global _cache
    if extra:
        return _Variables(event, extra)
    if _cache[0] is event:
        return _cache[1]
    found = _Variables(event, None)
    _cache = (event, found)
    return found


def evaluate(program: "cel.Program", event: CloudEvent, extra: dict[str, Any] | None = None) -> Any:
    """The expression's value; every evaluation failure is raised as ``ValueError`` (callers decide)."""
    return _execute(program, variables(event, extra).for_program(program))


def evaluate_over(program: "cel.Program", variables: dict[str, Any]) -> Any:
    """The expression's value over given variables, not an event's (``manifestCheck`` policies see
    ``object``); failures raised as ``ValueError`` like ``evaluate``."""
    return _execute(program, _context(variables))


def _execute(program: "cel.Program", context: "cel.Context") -> Any:
    try:
        return program.execute(context)
    except Exception as exc:  # the CEL binding raises KeyError, RuntimeError, TypeError, ... by case
        detail = str(exc).split("\n")[0]
        failed = _FAILED.match(detail)
        if failed:
            detail = f"{failed.group(1)}(): {failed.group(2)}"
        raise ValueError(f"no such key {detail}" if isinstance(exc, KeyError) else detail) from exc
