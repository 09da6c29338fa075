"""The CESQL error family, one class per error kind the spec names (§3.3).

CESQL is total: evaluating an expression never fails, it yields a value *and* a list of
errors. So apart from :class:`ParseError` (raised by ``compile``) and
:class:`FunctionRegistrationError` (raised when a custom function breaks the overloading
rules of §3.5), these classes are never raised out of the package: they are values that
travel in ``Result.errors``. They still subclass ``Exception`` so callers can wrap them
with ``raise ... from`` and so they carry a readable ``str()``.

Every error knows where in the source it happened (``position`` as an offset plus
``line``/``column``, 1-based) so a rule author can find the offending sub-expression.

How an evaluation error travels from where it happens to ``Expression.evaluate``
(:class:`Failure`, :func:`relocate`): the engine runs in the spec's *fail fast* mode (§4.1), which §1.2 recommends for
filters and which the CloudEvents TCK expects (``true AND (1 != 1 / 0)`` is ``false``
plus a MathError, not ``true``): the first error stops evaluation, and every enclosing
operator yields the zero value of its own return type (§3.3).

So compiled closures do not thread ``(value, errors)`` pairs through every call, which
would cost on every event; they raise :class:`Failure` and nobody catches it until the
root. The root then needs one more fact: the node that *raised* may define its own
value (``LEFT('abc', -2)`` is ``'abc'``, ``ABS(-2147483648)`` is ``2147483647``, §3.5),
which is the answer only when that node is the root itself. Otherwise the answer is the
zero value of the root's return type. ``origin`` records which node raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: syntax nodes mark where a Failure was raised
    from router.rules.cesql import syntax

__all__ = [
    "Failure",
    "relocate",
    "CesqlError",
    "CastError",
    "EvaluationError",
    "FunctionEvaluationError",
    "FunctionRegistrationError",
    "GenericError",
    "MathError",
    "MissingAttributeError",
    "MissingFunctionError",
    "ParseError",
    "SourceLocation",
    "locate",
]


class SourceLocation:
    """An offset into the expression text, with its 1-based line and column."""

    __slots__ = ("position", "line", "column")

    def __init__(self, position: int, line: int, column: int) -> None:
        self.position = position
        self.line = line
        self.column = column

    def __repr__(self) -> str:
        return f"{self.line}:{self.column}"


def locate(source: str, position: int) -> SourceLocation:
    """Turn an offset into a line/column pair (both 1-based) for messages."""
    line = source.count("\n", 0, position) + 1
    line_start = source.rfind("\n", 0, position) + 1
    return SourceLocation(position, line, position - line_start + 1)


class CesqlError(Exception):
    """Base of every CESQL error; ``kind`` is the spec's name for it (§3.3)."""

    kind = "generic"

    def __init__(
        self, message: str, location: SourceLocation | None = None, found: str | None = None
    ) -> None:
        # "expected ')' at 1:15 but found end of input": where comes before what was found.
        self.message = message if found is None else f"{message} but found {found}"
        self.location = location
        where = f" at {location!r}" if location is not None else ""
        tail = f" but found {found}" if found is not None else ""
        super().__init__(f"{message}{where}{tail}")

    @property
    def position(self) -> int | None:
        return self.location.position if self.location else None

    @property
    def line(self) -> int | None:
        return self.location.line if self.location else None

    @property
    def column(self) -> int | None:
        return self.location.column if self.location else None


class ParseError(CesqlError):
    """The expression text is not valid CESQL; raised by ``compile``.

    ``position``/``line``/``column`` always point at the offending character.
    """

    kind = "parse"
    location: SourceLocation

    def __init__(self, message: str, location: SourceLocation, found: str | None = None) -> None:
        super().__init__(message, location, found)


class FunctionRegistrationError(CesqlError):
    """A custom function definition breaks the overloading rules of §3.5."""

    kind = "generic"


class EvaluationError(CesqlError):
    """An error collected while evaluating (never raised out of ``evaluate``)."""


class MathError(EvaluationError):
    """Division or modulo by zero, or a result outside the 32-bit integer range."""

    kind = "math"


class CastError(EvaluationError):
    """An implicit or explicit cast that the rules of §3.7 do not allow."""

    kind = "cast"


class MissingAttributeError(EvaluationError):
    """The expression addresses an attribute the event does not carry (§3.2)."""

    kind = "missingAttribute"


class MissingFunctionError(EvaluationError):
    """No function is registered with that name and arity (§3.5)."""

    kind = "missingFunction"


class FunctionEvaluationError(EvaluationError):
    """A function rejected its arguments or failed while running (§3.5.3)."""

    kind = "functionEvaluation"


class GenericError(EvaluationError):
    """Any evaluation error the spec does not name."""

    kind = "generic"


class Failure(Exception):
    """Internal signal: ``error`` happened at ``origin``, whose own result is ``value``."""

    __slots__ = ("error", "value", "origin")

    def __init__(self, error: EvaluationError, value: object, origin: syntax.Node) -> None:
        self.error = error
        self.value = value
        self.origin = origin


def relocate(error: CesqlError, location: SourceLocation) -> EvaluationError:
    """The same error, pointing at ``location`` (casts and functions raise unlocated)."""
    if isinstance(error, EvaluationError) and error.location is not None:
        return error
    kind = type(error) if isinstance(error, EvaluationError) else GenericError
    return kind(error.message, location)
