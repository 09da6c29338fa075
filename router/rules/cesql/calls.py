"""Compiles function invocations (§3.5): dispatch by name and arity, then casts.

Dispatch happens once, at compile time. A call nothing can serve still compiles (the
spec defines its result: ``false`` plus a MissingFunctionError on every evaluation),
and the compiler also lists the error in ``Expression.static_errors`` so a rule loader
can reject the rule up front with a message such as ``unknown function FOO/2 at 1:8``.

Arguments are cast to the parameter types (§3.7 rule 3); *Any* parameters are passed
as they are. Built-ins are trusted to honour their declared return type; custom
functions are checked on every call and, when they raise or return something of the
wrong type, yield the zero value of their return type plus a FunctionEvaluationError
(§3.5.3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from router.rules.cesql import errors, syntax, types
from router.rules.cesql.coercion import PYTHON_TYPE, converter
from router.rules.cesql.errors import Failure, relocate
from router.rules.cesql.functions import FunctionDefinition, FunctionFailed
from router.rules.cesql.types import Type

if TYPE_CHECKING:
    from router.rules.cesql.compiler import Compiled, Compiler, Evaluator

__all__ = ["compile_call"]


def compile_call(compiler: Compiler, node: syntax.Call) -> Compiled:
    from router.rules.cesql.compiler import Compiled

    definition = compiler.functions.resolve(node.name, len(node.arguments))
    location = compiler.location(node)
    if definition is None:
        error = errors.MissingFunctionError(f"unknown function {node.name}/{len(node.arguments)}", location)
        compiler.static_errors.append(error)

        def missing(attributes: Mapping[str, object]) -> object:
            raise Failure(error, False, node)

        return Compiled(missing, Type.BOOLEAN)
    run = _runner(definition, node, location)
    zero = types.zero_value(definition.return_type)
    arguments = [
        _argument(compiler, argument, definition.parameter_type(index), node, zero)
        for index, argument in enumerate(node.arguments)
    ]
    if len(arguments) == 1:
        only = arguments[0]
        return Compiled(lambda attributes: run(only(attributes)), definition.return_type)
    if len(arguments) == 2:
        first, second = arguments
        return Compiled(lambda attributes: run(first(attributes), second(attributes)), definition.return_type)

    def call(attributes: Mapping[str, object]) -> object:
        return run(*[argument(attributes) for argument in arguments])

    return Compiled(call, definition.return_type)


def _argument(
    compiler: Compiler, node: syntax.Node, target: Type | None, call: syntax.Call, zero: object
) -> Evaluator:
    evaluate = compiler.compile(node).evaluate
    if target is None:
        return evaluate
    python_type = PYTHON_TYPE[target]
    convert = converter(target, call, zero, compiler.source)

    def argument(attributes: Mapping[str, object]) -> object:
        value = evaluate(attributes)
        return value if type(value) is python_type else convert(value)

    return argument


def _runner(definition: FunctionDefinition, node: syntax.Call, location: errors.SourceLocation) -> Callable[..., object]:
    implementation = definition.implementation
    if definition.trusted:

        def run_builtin(*arguments: object) -> object:
            try:
                return implementation(*arguments)
            except FunctionFailed as failed:
                raise Failure(relocate(failed.error, location), failed.value, node) from None

        return run_builtin
    return_type = PYTHON_TYPE[definition.return_type]
    zero = types.zero_value(definition.return_type)
    name = definition.name.upper()

    def run_custom(*arguments: object) -> object:
        try:
            result = implementation(*arguments)
        except FunctionFailed as failed:
            value = failed.value if type(failed.value) is return_type else zero
            raise Failure(relocate(failed.error, location), value, node) from None
        except Exception as exception:  # noqa: BLE001 - a user function's failure is data (§3.5.3)
            error = errors.FunctionEvaluationError(f"{name} failed: {exception}", location)
            raise Failure(error, zero, node) from exception
        if type(result) is not return_type or (
            return_type is int and not types.INT32_MIN <= result <= types.INT32_MAX  # type: ignore[operator]
        ):
            error = errors.FunctionEvaluationError(
                f"{name} returned {type(result).__name__}, not {definition.return_type}", location
            )
            raise Failure(error, zero, node)
        return result

    return run_custom
