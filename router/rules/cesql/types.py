"""The CESQL type system (§3.1) and its casting rules (§3.7).

Values are plain Python objects: ``bool`` for *Boolean*, ``int`` for *Integer* (always
inside the signed 32-bit range) and ``str`` for *String*. Because ``bool`` subclasses
``int`` in Python, every check here uses ``type(x) is ...`` rather than ``isinstance``.

The casts raise a bare :class:`~router.rules.cesql.errors.CastError` (no location); the
compiler attaches the location of the operator that asked for the cast and decides
which value the failing operator returns.
"""

from __future__ import annotations

import base64
import datetime
import enum
import re

from router.rules.cesql import errors

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "Type",
    "attribute_value",
    "cast",
    "caster",
    "to_boolean",
    "to_integer",
    "to_string",
    "type_of",
    "zero_value",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# §3.7 String -> Integer: optional sign then base-10 digits, nothing else. Python's int()
# would also accept whitespace, underscores and non-ASCII digits, so match first.
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+\Z")


class Type(enum.Enum):
    BOOLEAN = "Boolean"
    INTEGER = "Integer"
    STRING = "String"

    def __str__(self) -> str:
        return self.value


_ZERO = {Type.BOOLEAN: False, Type.INTEGER: 0, Type.STRING: ""}


def zero_value(value_type: Type | None) -> object:
    """§3.1 zero value; an unknown type counts as Boolean (§3.2, last paragraph)."""
    return _ZERO[value_type or Type.BOOLEAN]


def type_of(value: object) -> Type:
    kind = type(value)
    if kind is bool:
        return Type.BOOLEAN
    if kind is int:
        return Type.INTEGER
    return Type.STRING


def to_integer(value: object) -> int:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is bool:
        return 1 if value else 0
    text = value  # a String
    if _INTEGER_TEXT.match(text):  # type: ignore[arg-type]
        number = int(text)  # type: ignore[arg-type]
        if INT32_MIN <= number <= INT32_MAX:
            return number
        raise errors.CastError(f"cannot cast {_show(text)} to Integer: outside the 32-bit range")
    raise errors.CastError(f"cannot cast {_show(text)} to Integer")


def to_boolean(value: object) -> bool:
    kind = type(value)
    if kind is bool:
        return value  # type: ignore[return-value]
    if kind is int:
        return value != 0
    lowered = value.lower()  # type: ignore[attr-defined]
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise errors.CastError(f"cannot cast {_show(value)} to Boolean")


def to_string(value: object) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bool:
        return "true" if value else "false"
    return str(value)


_CASTS = {Type.BOOLEAN: to_boolean, Type.INTEGER: to_integer, Type.STRING: to_string}


def cast(value: object, target: Type) -> object:
    return _CASTS[target](value)


def caster(target: Type):  # noqa: ANN201 - returns one of the three casts above
    return _CASTS[target]


def attribute_value(value: object) -> object:
    """Represent an event attribute as a CESQL value (§3.2).

    Anything that is not one of the primitive types becomes a String: timestamps in
    RFC 3339, binary in base64 (the CloudEvents string encodings), integers outside the
    32-bit range and everything else through ``str()``.
    """
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if kind is int:
        return value if INT32_MIN <= value <= INT32_MAX else str(value)  # type: ignore[operator]
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _show(value: object) -> str:
    text = value if isinstance(value, str) else to_string(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text)
