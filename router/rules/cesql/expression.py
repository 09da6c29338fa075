"""A compiled CESQL expression and the result of evaluating it against one event.

This is the surface the router works with: ``compile`` once when a rule is loaded,
then ``matches`` (or ``evaluate``, to see the value and errors) per event. Neither ever
raises: CESQL is total (§1, §3.3), so an evaluation error becomes the zero value of the
expression's type plus an entry in ``Result.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router.rules.cesql import errors, parser, syntax, types
from router.rules.cesql.compiler import Compiler, Evaluator
from router.rules.cesql.errors import Failure
from router.rules.cesql.functions import BUILTINS, FunctionRegistry
from router.rules.cesql.types import Type

__all__ = ["Expression", "Result", "compile"]


@dataclass(frozen=True, slots=True)
class Result:
    """The value of an expression for one event and the errors met computing it."""

    value: bool | int | str
    errors: tuple[errors.EvaluationError, ...] = ()

    @property
    def passes_filter(self) -> bool:
        """§1.2: only a Boolean ``true`` with no errors lets an event through."""
        return self.value is True and not self.errors


class Expression:
    """One compiled expression; immutable and safe to share between tasks."""

    __slots__ = ("source", "tree", "type", "static_errors", "_evaluate", "_zero")

    def __init__(self, source: str, functions: FunctionRegistry = BUILTINS) -> None:
        self.source = source
        self.tree: syntax.Node = parser.parse(source)
        compiler = Compiler(source, functions)
        compiled = compiler.compile(self.tree)
        self.type: Type | None = compiled.type
        """Static result type; ``None`` when the whole expression is one attribute."""
        self.static_errors: tuple[errors.EvaluationError, ...] = tuple(compiler.static_errors)
        """Errors certain to be met when evaluation reaches them (unknown functions)."""
        self._evaluate: Evaluator = compiled.evaluate
        self._zero = types.zero_value(compiled.type)

    def evaluate(self, attributes: Mapping[str, object]) -> Result:
        """Value and errors for one event's context attributes and extensions."""
        try:
            return Result(self._evaluate(attributes))  # type: ignore[arg-type]
        except Failure as failure:
            value = failure.value if failure.origin is self.tree else self._zero
            return Result(value, (failure.error,))  # type: ignore[arg-type]

    def matches(self, attributes: Mapping[str, object]) -> bool:
        """True only for a Boolean ``true`` reached without any error (§1.2)."""
        try:
            return self._evaluate(attributes) is True
        except Failure:
            return False

    def __repr__(self) -> str:
        return f"cesql.Expression({self.source!r})"


def compile(source: str, functions: FunctionRegistry = BUILTINS) -> Expression:  # noqa: A001
    """Parse and compile ``source``; raises :class:`~router.rules.cesql.errors.ParseError`."""
    return Expression(source, functions)
