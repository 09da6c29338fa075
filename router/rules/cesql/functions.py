"""Function definitions, their overloading rules, and the built-ins every engine needs.

A :class:`FunctionRegistry` maps a case-insensitive name to overloads told apart by
arity only (§3.5): two definitions may not share name and arity, and a variadic
definition is allowed only when its fixed parameters outnumber the arity of every other
overload of that name, so dispatch is never ambiguous. Built-ins register through the
``_builtin`` decorator into :data:`BUILTINS`; callers who want custom functions take
``BUILTINS.copy()`` and ``register`` theirs.

Arguments arrive already cast to the declared parameter types (§3.7 rule 3), so
implementations only implement semantics. A function that must report an error while
still returning a value (``LEFT('abc', -2)`` is ``'abc'`` plus an error, §3.5.1) raises
:class:`FunctionFailed` carrying both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from router.rules.cesql import errors, types
from router.rules.cesql.types import Type

__all__ = ["BUILTINS", "FunctionDefinition", "FunctionFailed", "FunctionRegistry"]

_NAME = re.compile(r"[A-Za-z][A-Za-z_]*\Z")

# Unicode White_Space (what TRIM removes, §3.5.1). Not str.isspace(): that also counts
# the control characters U+001C..U+001F, which the spec says TRIM must keep.
UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class FunctionFailed(Exception):
    """Raised by a built-in to return ``value`` together with ``error`` (§3.5.3)."""

    def __init__(self, error: errors.EvaluationError, value: object) -> None:
        super().__init__(str(error))
        self.error = error
        self.value = value


@dataclass(frozen=True, slots=True)
class FunctionDefinition:
    """One overload. ``None`` as a parameter type means *Any*: the argument is not cast."""

    name: str
    parameters: tuple[Type | None, ...]
    return_type: Type
    implementation: Callable[..., object]
    variadic: Type | None = None
    """Type of the repeated trailing parameters; ``None`` for a fixed arity."""
    trusted: bool = False
    """Built-ins are trusted to return the declared type and to signal errors only
    through :class:`FunctionFailed`; custom functions are checked on every call."""

    @property
    def signature(self) -> str:
        shown = [str(parameter or "Any") for parameter in self.parameters]
        if self.variadic is not None:
            shown.append(f"{self.variadic}...")
        return f"{self.name}({', '.join(shown)}) -> {self.return_type}"

    def parameter_type(self, index: int) -> Type | None:
        return self.parameters[index] if index < len(self.parameters) else self.variadic


class FunctionRegistry:
    """Overloads by upper-cased name, then by arity; plus at most one variadic."""

    def __init__(self) -> None:
        self._fixed: dict[str, dict[int, FunctionDefinition]] = {}
        self._variadic: dict[str, FunctionDefinition] = {}

    def copy(self) -> FunctionRegistry:
        clone = FunctionRegistry()
        clone._fixed = {name: dict(overloads) for name, overloads in self._fixed.items()}
        clone._variadic = dict(self._variadic)
        return clone

    def register(self, definition: FunctionDefinition) -> None:
        """Add an overload, or raise FunctionRegistrationError if it breaks §3.5."""
        if not _NAME.match(definition.name):
            raise errors.FunctionRegistrationError(
                f"invalid function name {definition.name!r}: letters and '_' only"
            )
        name = definition.name.upper()
        fixed = self._fixed.setdefault(name, {})
        variadic = self._variadic.get(name)
        arity = len(definition.parameters)
        if definition.variadic is not None:
            if variadic is not None:
                raise errors.FunctionRegistrationError(f"{name} already has a variadic overload")
            if fixed and arity <= max(fixed):
                raise errors.FunctionRegistrationError(
                    f"variadic {name} needs more than {max(fixed)} fixed parameters"
                )
            self._variadic[name] = definition
            return
        if arity in fixed:
            raise errors.FunctionRegistrationError(f"{name}/{arity} is already defined")
        if variadic is not None and arity >= len(variadic.parameters):
            raise errors.FunctionRegistrationError(
                f"{name}/{arity} would be ambiguous with {variadic.signature}"
            )
        fixed[arity] = definition

    def resolve(self, name: str, arity: int) -> FunctionDefinition | None:
        name = name.upper()
        overloads = self._fixed.get(name)
        if overloads is not None and arity in overloads:
            return overloads[arity]
        variadic = self._variadic.get(name)
        if variadic is not None and arity >= len(variadic.parameters):
            return variadic
        return None


BUILTINS = FunctionRegistry()

S, I = Type.STRING, Type.INTEGER


def _builtin(
    name: str, parameters: tuple[Type | None, ...], return_type: Type, variadic: Type | None = None
) -> Callable[[Callable[..., object]], Callable[..., object]]:
    def register(implementation: Callable[..., object]) -> Callable[..., object]:
        BUILTINS.register(
            FunctionDefinition(name, parameters, return_type, implementation, variadic, True)
        )
        return implementation

    return register


# -- §3.5.1 string manipulation ---------------------------------------------------------


@_builtin("LENGTH", (S,), I)
def _length(text: str) -> int:
    return len(text)


@_builtin("CONCAT", (), S, variadic=S)
def _concat(*texts: str) -> str:
    return "".join(texts)


@_builtin("CONCAT_WS", (S,), S, variadic=S)
def _concat_ws(delimiter: str, *texts: str) -> str:
    return delimiter.join(texts)


@_builtin("LOWER", (S,), S)
def _lower(text: str) -> str:
    return text.lower()


@_builtin("UPPER", (S,), S)
def _upper(text: str) -> str:
    return text.upper()


@_builtin("TRIM", (S,), S)
def _trim(text: str) -> str:
    return text.strip(UNICODE_WHITESPACE)


@_builtin("LEFT", (S, I), S)
def _left(text: str, count: int) -> str:
    if count < 0:
        raise FunctionFailed(errors.FunctionEvaluationError(f"LEFT length {count} is negative"), text)
    return text[:count]


@_builtin("RIGHT", (S, I), S)
def _right(text: str, count: int) -> str:
    if count < 0:
        raise FunctionFailed(errors.FunctionEvaluationError(f"RIGHT length {count} is negative"), text)
    return text[len(text) - count :] if count < len(text) else text


def _substring_start(text: str, position: int, function: str) -> int:
    """0-based start for a 1-based (or, when negative, from-the-end) ``position``."""
    if position > len(text) or position < -len(text):
        raise FunctionFailed(
            errors.FunctionEvaluationError(
                f"{function} position {position} is outside a string of length {len(text)}"
            ),
            "",
        )
    return position - 1 if position > 0 else len(text) + position


@_builtin("SUBSTRING", (S, I), S)
def _substring(text: str, position: int) -> str:
    start = _substring_start(text, position, "SUBSTRING")
    return "" if position == 0 else text[start:]


@_builtin("SUBSTRING", (S, I, I), S)
def _substring_with_length(text: str, position: int, length: int) -> str:
    start = _substring_start(text, position, "SUBSTRING")
    if length < 0:
        raise FunctionFailed(
            errors.FunctionEvaluationError(f"SUBSTRING length {length} is negative"), ""
        )
    return "" if position == 0 else text[start : start + length]


# -- §3.5.2 math ------------------------------------------------------------------------


@_builtin("ABS", (I,), I)
def _abs(number: int) -> int:
    if number == types.INT32_MIN:
        raise FunctionFailed(
            errors.MathError(f"ABS({number}) overflows a 32-bit integer"), types.INT32_MAX
        )
    return abs(number)


# -- explicit casts: INT and STRING are used by the spec's own examples (§2, §3.7) ----------


def _explicit_cast(target: Type) -> Callable[[object], object]:
    cast = types.caster(target)

    def run(value: object) -> object:
        try:
            return cast(value)
        except errors.CastError as error:
            raise FunctionFailed(error, types.zero_value(target)) from None

    return run


_builtin("INT", (None,), Type.INTEGER)(_explicit_cast(Type.INTEGER))
_builtin("BOOL", (None,), Type.BOOLEAN)(_explicit_cast(Type.BOOLEAN))
_builtin("STRING", (None,), Type.STRING)(_explicit_cast(Type.STRING))
