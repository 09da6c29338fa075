"""Implicit casts inside compiled operators (§3.7), as ready-to-call converters.

Operators cast their operands to the parameter types of their definition. A compiled
operator checks ``type(x) is <target>`` inline (the common case costs nothing more)
and only calls a converter from here when the type differs. A failing conversion
becomes a :class:`~router.rules.cesql.errors.Failure` located at the operator that asked for
it and carrying that operator's zero value, per fail-fast error handling.
"""

from __future__ import annotations

from collections.abc import Callable

from router.rules.cesql import errors, syntax, types
from router.rules.cesql.errors import Failure
from router.rules.cesql.types import Type

__all__ = ["PYTHON_TYPE", "converter", "converter_to_type_of"]

PYTHON_TYPE: dict[Type, type] = {Type.BOOLEAN: bool, Type.INTEGER: int, Type.STRING: str}

Converter = Callable[[object], object]


def converter(target: Type, node: syntax.Node, zero: object, source: str) -> Converter:
    """Cast to ``target`` or raise a located Failure whose value is ``zero``."""
    cast = types.caster(target)
    location = errors.locate(source, node.position)

    def convert(value: object) -> object:
        try:
            return cast(value)
        except errors.CastError as error:
            raise Failure(errors.CastError(error.message, location), zero, node) from None

    return convert


def converter_to_type_of(node: syntax.Node, zero: object, source: str) -> Callable[[object, object], object]:
    """``convert(x, y)`` casts ``x`` to the runtime type of ``y`` (§3.7 rule 2.2)."""
    by_type = {
        python_type: converter(cesql_type, node, zero, source)
        for cesql_type, python_type in PYTHON_TYPE.items()
    }

    def convert(value: object, like: object) -> object:
        return by_type[type(like)](value)

    return convert
