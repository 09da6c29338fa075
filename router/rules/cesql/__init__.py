"""CloudEvents SQL Expression Language (CESQL) v1: parse once, evaluate per event.

The package is self-contained (no imports from the rest of ``router``) so it can be
published on its own. Typical use::

    from router.rules import cesql

    expr = cesql.compile("type LIKE 'com.github.%' AND EXISTS subject")
    expr.matches({"type": "com.github.push", "subject": "main"})   # True
    result = expr.evaluate({"type": "com.github.push"})
    result.value, result.errors                                     # False, ()
    cesql.compile("subject = 'main'").evaluate({}).errors         # (MissingAttributeError,)

``compile`` raises :class:`ParseError` (with ``position``, ``line``, ``column``);
evaluation never raises. Custom functions: ``registry = cesql.BUILTINS.copy()``,
``registry.register(cesql.FunctionDefinition(...))``, ``cesql.compile(text, registry)``.
"""

from router.rules.cesql.errors import (
    CastError,
    CesqlError,
    EvaluationError,
    FunctionEvaluationError,
    FunctionRegistrationError,
    GenericError,
    MathError,
    MissingAttributeError,
    MissingFunctionError,
    ParseError,
)
from router.rules.cesql.expression import Expression, Result, compile
from router.rules.cesql.functions import BUILTINS, FunctionDefinition, FunctionFailed, FunctionRegistry
from router.rules.cesql.types import Type

__all__ = [
    "BUILTINS",
    "CastError",
    "CesqlError",
    "EvaluationError",
    "Expression",
    "FunctionDefinition",
    "FunctionEvaluationError",
    "FunctionFailed",
    "FunctionRegistrationError",
    "FunctionRegistry",
    "GenericError",
    "MathError",
    "MissingAttributeError",
    "MissingFunctionError",
    "ParseError",
    "Result",
    "Type",
    "compile",
]
