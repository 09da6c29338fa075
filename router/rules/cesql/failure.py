"""How an evaluation error travels from where it happens to ``Expression.evaluate``.

The engine runs in the spec's *fail fast* mode (§4.1), which §1.2 recommends for
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

from router.rules.cesql import errors, syntax

__all__ = ["Failure", "relocate"]


class Failure(Exception):
    """Internal signal: ``error`` happened at ``origin``, whose own result is ``value``."""

    __slots__ = ("error", "value", "origin")

    def __init__(self, error: errors.EvaluationError, value: object, origin: syntax.Node) -> None:
        self.error = error
        self.value = value
        self.origin = origin


def relocate(error: errors.CesqlError, location: errors.SourceLocation) -> errors.EvaluationError:
    """The same error, pointing at ``location`` (casts and functions raise unlocated)."""
    if isinstance(error, errors.EvaluationError) and error.location is not None:
        return error
    kind = type(error) if isinstance(error, errors.EvaluationError) else errors.GenericError
    return kind(error.message, location)
