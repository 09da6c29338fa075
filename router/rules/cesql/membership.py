"""Compiles ``x [NOT] IN (y1, y2, ...)`` (§3.4.5).

Each element is compared with ``=`` semantics, but cast to the type of ``x`` rather
than the other way round (§3.7, the IN rule). Elements are tried left to right and the
first match wins, exactly as ``x = y1 OR x = y2 ...`` would with OR's short-circuit;
so an element that cannot be cast to the type of ``x`` is a CastError only if no earlier
element matched.

Sets written entirely of literals, the usual case in filters, are cast once per
possible type of ``x`` at compile time and become a dict lookup that remembers each
value's first position, which keeps that left-to-right rule exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from router.rules.cesql import errors, syntax, types
from router.rules.cesql.coercion import PYTHON_TYPE, converter_to_type_of
from router.rules.cesql.errors import Failure

if TYPE_CHECKING:
    from router.rules.cesql.compiler import Compiler, Evaluator

__all__ = ["compile_membership"]


def compile_membership(compiler: Compiler, node: syntax.In) -> Evaluator:
    operand = compiler.compile(node.operand).evaluate
    negated = node.negated
    if all(isinstance(element, syntax.Literal) for element in node.elements):
        return _literal_set(compiler, node, operand, negated)
    elements = [compiler.compile(element).evaluate for element in node.elements]
    convert_like = converter_to_type_of(node, False, compiler.source)

    def membership(attributes: Mapping[str, object]) -> object:
        value = operand(attributes)
        kind = type(value)
        for element in elements:
            candidate = element(attributes)
            if type(candidate) is not kind:
                candidate = convert_like(candidate, value)
            if candidate == value:
                return not negated
        return negated

    return membership


class _CastSet:
    """The literal elements cast to one type: first index per value, first failure."""

    __slots__ = ("first_index", "failure_index", "failure_message")

    def __init__(self, literals: list[object], target: types.Type) -> None:
        self.first_index: dict[object, int] = {}
        self.failure_index = len(literals)
        self.failure_message = ""
        for index, literal in enumerate(literals):
            try:
                value = types.cast(literal, target)
            except errors.CastError as error:
                self.failure_index = index
                self.failure_message = error.message
                break
            self.first_index.setdefault(value, index)


def _literal_set(compiler: Compiler, node: syntax.In, operand: Evaluator, negated: bool) -> Evaluator:
    literals = [element.value for element in node.elements]  # type: ignore[union-attr]
    by_python_type = {
        PYTHON_TYPE[cesql_type]: _CastSet(literals, cesql_type) for cesql_type in types.Type
    }
    location = compiler.location(node)

    def check(value: object) -> object:
        cast_set = by_python_type[type(value)]
        index = cast_set.first_index.get(value)
        if index is not None and index < cast_set.failure_index:
            return not negated
        if cast_set.failure_index < len(literals):
            raise Failure(errors.CastError(cast_set.failure_message, location), False, node)
        return negated

    # Casting to String never fails, so a String operand is a plain set lookup.
    members = frozenset(by_python_type[str].first_index)

    def membership(attributes: Mapping[str, object]) -> object:
        value = operand(attributes)
        if type(value) is str:
            return (value in members) is not negated
        return check(value)

    return membership
