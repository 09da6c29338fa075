"""Compiles a syntax tree, once, into nested Python closures.

Evaluating a filter happens once per event per rule, so the tree is not walked at
evaluation time: each node becomes a closure specialised for what is known statically
(operand types, literal operands, the LIKE pattern's shape, a literal IN set), and the
root closure is called with the event's attribute mapping.

Alongside the closure the compiler infers each node's static return type (§3.4, §3.5).
It is needed for the zero value an erroring operator yields (§3.3) and is ``None`` only
for attribute references, whose type is known per event; §3.2 says to treat such an
unknown type as Boolean for zero values.

Errors do not flow through return values; see :class:`router.rules.cesql.errors.Failure`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from router.rules.cesql import errors, like, syntax, types
from router.rules.cesql.calls import compile_call
from router.rules.cesql.coercion import PYTHON_TYPE, converter, converter_to_type_of
from router.rules.cesql.errors import Failure
from router.rules.cesql.functions import FunctionRegistry
from router.rules.cesql.membership import compile_membership
from router.rules.cesql.types import INT32_MAX, INT32_MIN, Type

__all__ = ["Compiled", "Compiler", "Evaluator"]

Evaluator = Callable[[Mapping[str, object]], object]

# §3.4.4: an event is assumed valid, so its REQUIRED attributes always exist.
REQUIRED_ATTRIBUTES = frozenset({"id", "source", "specversion", "type"})


class Compiled(NamedTuple):
    evaluate: Evaluator
    type: Type | None  # None: an attribute, typed per event


class Compiler:
    """Compiles one expression; collects errors every evaluation would hit."""

    def __init__(self, source: str, functions: FunctionRegistry) -> None:
        self.source = source
        self.functions = functions
        self.static_errors: list[errors.EvaluationError] = []

    def compile(self, node: syntax.Node) -> Compiled:
        if isinstance(node, syntax.Literal):
            value = node.value
            return Compiled(lambda attributes: value, types.type_of(value))
        if isinstance(node, syntax.Identifier):
            return Compiled(self._identifier(node), None)
        if isinstance(node, syntax.Exists):
            return Compiled(self._exists(node), Type.BOOLEAN)
        if isinstance(node, syntax.Unary):
            return self._unary(node)
        if isinstance(node, syntax.Binary):
            return self._binary(node)
        if isinstance(node, syntax.Like):
            return Compiled(self._like(node), Type.BOOLEAN)
        if isinstance(node, syntax.In):
            return Compiled(compile_membership(self, node), Type.BOOLEAN)
        return compile_call(self, node)

    def location(self, node: syntax.Node) -> errors.SourceLocation:
        return errors.locate(self.source, node.position)

    def operand(self, node: syntax.Node, target: Type, owner: syntax.Node, zero: object):
        """Compile ``node`` and the converter that casts its value to ``target``."""
        return self.compile(node).evaluate, PYTHON_TYPE[target], converter(target, owner, zero, self.source)

    # -- attributes -----------------------------------------------------------------

    def _identifier(self, node: syntax.Identifier) -> Evaluator:
        name = node.name
        location = self.location(node)
        represent = types.attribute_value

        def attribute(attributes: Mapping[str, object]) -> object:
            try:
                value = attributes[name]
            except KeyError:
                value = None
            kind = type(value)
            if kind is str or kind is bool:
                return value
            if kind is int and INT32_MIN <= value <= INT32_MAX:  # type: ignore[operator]
                return value
            if value is None:
                error = errors.MissingAttributeError(f"missing attribute {name!r}", location)
                raise Failure(error, False, node)
            return represent(value)

        return attribute

    def _exists(self, node: syntax.Exists) -> Evaluator:
        name = node.name
        if name in REQUIRED_ATTRIBUTES:
            return lambda attributes: True
        return lambda attributes: attributes.get(name) is not None

    # -- operators ------------------------------------------------------------------

    def _unary(self, node: syntax.Unary) -> Compiled:
        if node.operator == "NOT":
            operand, boolean, convert = self.operand(node.operand, Type.BOOLEAN, node, False)

            def negation(attributes: Mapping[str, object]) -> object:
                value = operand(attributes)
                if type(value) is not boolean:
                    value = convert(value)
                return not value

            return Compiled(negation, Type.BOOLEAN)
        operand, integer, convert = self.operand(node.operand, Type.INTEGER, node, 0)
        location = self.location(node)

        def minus(attributes: Mapping[str, object]) -> object:
            value = operand(attributes)
            if type(value) is not integer:
                value = convert(value)
            if value == INT32_MIN:
                # Same result as ABS(-2147483648) (§3.5.2), for the same overflow.
                error = errors.MathError(f"-({value}) overflows a 32-bit integer", location)
                raise Failure(error, INT32_MAX, node)
            return -value

        return Compiled(minus, Type.INTEGER)

    def _binary(self, node: syntax.Binary) -> Compiled:
        operator = node.operator
        if operator in ("AND", "OR", "XOR"):
            return Compiled(self._logic(node), Type.BOOLEAN)
        if operator in ("=", "!="):
            return Compiled(self._equality(node), Type.BOOLEAN)
        if operator in ("<", "<=", ">", ">="):
            return Compiled(self._integer_operator(node, _ORDERINGS[operator], False), Type.BOOLEAN)
        return Compiled(self._integer_operator(node, self._arithmetic(node), 0), Type.INTEGER)

    def _logic(self, node: syntax.Binary) -> Evaluator:
        left, boolean, convert_left = self.operand(node.left, Type.BOOLEAN, node, False)
        right, _, convert_right = self.operand(node.right, Type.BOOLEAN, node, False)
        if node.operator == "AND":  # short-circuit (§3.4.2)

            def conjunction(attributes: Mapping[str, object]) -> object:
                value = left(attributes)
                if value is False:
                    return False
                if type(value) is not boolean and not convert_left(value):
                    return False
                value = right(attributes)
                return value if type(value) is boolean else convert_right(value)

            return conjunction
        if node.operator == "OR":

            def disjunction(attributes: Mapping[str, object]) -> object:
                value = left(attributes)
                if value is True:
                    return True
                if type(value) is not boolean and convert_left(value):
                    return True
                value = right(attributes)
                return value if type(value) is boolean else convert_right(value)

            return disjunction

        def exclusive(attributes: Mapping[str, object]) -> object:
            first = left(attributes)
            second = right(attributes)
            if type(first) is not boolean:
                first = convert_left(first)
            if type(second) is not boolean:
                second = convert_right(second)
            return first is not second

        return exclusive

    def _equality(self, node: syntax.Binary) -> Evaluator:
        # '=' is ambiguous (§3.7): the right operand's type picks the definition, and
        # the left operand is cast to it ('TRUE' = true is true; true = 'TRUE' is false).
        left = self.compile(node.left).evaluate
        right_compiled = self.compile(node.right)
        right = right_compiled.evaluate
        negate = node.operator == "!="
        if right_compiled.type is not None:
            target = PYTHON_TYPE[right_compiled.type]
            convert = converter(right_compiled.type, node, False, self.source)

            def typed_equality(attributes: Mapping[str, object]) -> object:
                value = left(attributes)
                other = right(attributes)
                if type(value) is not target:
                    value = convert(value)
                return (value == other) is not negate

            return typed_equality
        convert_like = converter_to_type_of(node, False, self.source)

        def equality(attributes: Mapping[str, object]) -> object:
            value = left(attributes)
            other = right(attributes)
            if type(value) is not type(other):
                value = convert_like(value, other)
            return (value == other) is not negate

        return equality

    def _integer_operator(self, node: syntax.Binary, apply: Callable[[int, int], object], zero: object) -> Evaluator:
        left, integer, convert_left = self.operand(node.left, Type.INTEGER, node, zero)
        right, _, convert_right = self.operand(node.right, Type.INTEGER, node, zero)

        def integer_operator(attributes: Mapping[str, object]) -> object:
            first = left(attributes)
            second = right(attributes)
            if type(first) is not integer:
                first = convert_left(first)
            if type(second) is not integer:
                second = convert_right(second)
            return apply(first, second)

        return integer_operator

    def _arithmetic(self, node: syntax.Binary) -> Callable[[int, int], int]:
        operator = node.operator
        location = self.location(node)

        def checked(result: int) -> int:
            if INT32_MIN <= result <= INT32_MAX:
                return result
            error = errors.MathError(f"result of {operator} overflows a 32-bit integer", location)
            raise Failure(error, 0, node)

        def by_zero() -> Failure:
            verb = "division" if operator == "/" else "modulo"
            return Failure(errors.MathError(f"{verb} by zero", location), 0, node)

        if operator == "+":
            return lambda x, y: checked(x + y)
        if operator == "-":
            return lambda x, y: checked(x - y)
        if operator == "*":
            return lambda x, y: checked(x * y)
        if operator == "/":

            def divide(x: int, y: int) -> int:
                if y == 0:
                    raise by_zero()
                quotient = abs(x) // abs(y)  # rounds towards 0 (§3.4.2)
                return checked(quotient if (x < 0) == (y < 0) else -quotient)

            return divide

        def modulo(x: int, y: int) -> int:
            if y == 0:
                raise by_zero()
            remainder = abs(x) % abs(y)  # takes the sign of x (§3.4.2)
            return remainder if x >= 0 else -remainder

        return modulo

    def _like(self, node: syntax.Like) -> Evaluator:
        operand, string, convert = self.operand(node.operand, Type.STRING, node, False)
        matches = like.compile_pattern(node.pattern)
        if node.negated:

            def not_like(attributes: Mapping[str, object]) -> object:
                value = operand(attributes)
                return not matches(value if type(value) is string else convert(value))

            return not_like

        def is_like(attributes: Mapping[str, object]) -> object:
            value = operand(attributes)
            return matches(value if type(value) is string else convert(value))

        return is_like


_ORDERINGS: dict[str, Callable[[int, int], bool]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}
