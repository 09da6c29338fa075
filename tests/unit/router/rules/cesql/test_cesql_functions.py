"""Built-in functions (§3.5.1, §3.5.2, explicit casts), dispatch and custom functions (§3.5)."""

from __future__ import annotations

import pytest

from router.rules import cesql

CASES = [
    ("§3.5.1 LENGTH", "LENGTH('abc')", 3, None),
    ("§3.5.1 LENGTH empty", "LENGTH('')", 0, None),
    ("§3.5.1 LENGTH counts characters, not bytes", "LENGTH('héllo')", 5, None),
    ("§3.5.1 LENGTH casts Boolean", "LENGTH(TRUE)", 4, None),
    ("§3.5.1 LENGTH casts Integer", "LENGTH(-12)", 3, None),
    ("§3.5.1 CONCAT", "CONCAT('a', 'b', 'c')", "abc", None),
    ("§3.5.1 CONCAT no arguments", "CONCAT()", "", None),
    ("§3.5.1 CONCAT casts", "CONCAT('a', 1, TRUE)", "a1true", None),
    ("§3.5.1 CONCAT_WS", "CONCAT_WS(',', 'a', 'b', 'c')", "a,b,c", None),
    ("§3.5.1 CONCAT_WS delimiter only", "CONCAT_WS(',')", "", None),
    ("§3.5.1 CONCAT_WS one value", "CONCAT_WS(',', 'a')", "a", None),
    ("§3.5.1 CONCAT_WS needs a delimiter", "CONCAT_WS()", False, "missingFunction"),
    ("§3.5.1 LOWER", "LOWER('AbC')", "abc", None),
    ("§3.5.1 UPPER", "UPPER('AbC')", "ABC", None),
    ("§3.5.1 TRIM both ends", "TRIM('   a b c   ')", "a b c", None),
    ("§3.5.1 TRIM unicode whitespace", "TRIM('\u3000\u00a0a\t\n')", "a", None),
    ("§3.5.1 TRIM keeps control characters", "TRIM('\x1fa\x1f')", "\x1fa\x1f", None),
    ("§3.5.1 LEFT", "LEFT('abc', 2)", "ab", None),
    ("§3.5.1 LEFT longer than string", "LEFT('abc', 10)", "abc", None),
    ("§3.5.1 LEFT zero", "LEFT('', 0)", "", None),
    ("§3.5.1 LEFT negative", "LEFT('abc', -2)", "abc", "functionEvaluation"),
    ("§3.5.1 RIGHT", "RIGHT('abc', 2)", "bc", None),
    ("§3.5.1 RIGHT zero", "RIGHT('abc', 0)", "", None),
    ("§3.5.1 RIGHT longer than string", "RIGHT('abc', 10)", "abc", None),
    ("§3.5.1 RIGHT negative", "RIGHT('abc', -2)", "abc", "functionEvaluation"),
    ("§3.5.1 SUBSTRING from 1", "SUBSTRING('abcdef', 1)", "abcdef", None),
    ("§3.5.1 SUBSTRING from 5", "SUBSTRING('Quadratically', 5)", "ratically", None),
    ("§3.5.1 SUBSTRING negative position", "SUBSTRING('Sakila', -3)", "ila", None),
    ("§3.5.1 SUBSTRING position 0", "SUBSTRING('Quadratically', 0)", "", None),
    ("§3.5.1 SUBSTRING position = length", "SUBSTRING('abc', 3)", "c", None),
    ("§3.5.1 SUBSTRING position = -length", "SUBSTRING('abc', -3)", "abc", None),
    ("§3.5.1 SUBSTRING past the end", "SUBSTRING('abcdef', 10)", "", "functionEvaluation"),
    ("§3.5.1 SUBSTRING before the start", "SUBSTRING('abcdef', -10)", "", "functionEvaluation"),
    ("§3.5.1 SUBSTRING with length", "SUBSTRING('abcdef', 2, 4)", "bcde", None),
    ("§3.5.1 SUBSTRING negative position with length", "SUBSTRING('Sakila', -5, 3)", "aki", None),
    ("§3.5.1 SUBSTRING length past the end", "SUBSTRING('abcdef', 3, 100)", "cdef", None),
    ("§3.5.1 SUBSTRING position 0 with length", "SUBSTRING('Quadratically', 0, 1)", "", None),
    ("§3.5.1 SUBSTRING negative length", "SUBSTRING('abcdef', 2, -1)", "", "functionEvaluation"),
    ("§3.5.1 SUBSTRING out of range with length", "SUBSTRING('abcdef', -10, 10)", "", "functionEvaluation"),
    ("§3.5.2 ABS", "ABS(-10)", 10, None),
    ("§3.5.2 ABS zero", "ABS(0)", 0, None),
    ("§3.5.2 ABS overflow", "ABS(-2147483648)", 2147483647, "math"),
    ("§3.7 INT of String", "INT('-1')", -1, None),
    ("§3.7 INT of Boolean", "INT(TRUE)", 1, None),
    ("§3.7 INT bad cast", "INT('ABC')", 0, "cast"),
    ("§3.7 BOOL of String, any case", "BOOL('TRUE')", True, None),
    ("§3.7 BOOL of Integer", "BOOL(-50)", True, None),
    ("§3.7 BOOL of 0", "BOOL(0)", False, None),
    ("§3.7 BOOL bad cast", "BOOL('ABC')", False, "cast"),
    ("§3.7 STRING of Boolean", "STRING(FALSE)", "false", None),
    ("§3.7 STRING of Integer", "STRING(-1)", "-1", None),
    ("§3.7 MY_STRING_PREDICATE-style cast of a result", "LENGTH(sequence + 10)", 2, None),
    ("§3.7 argument cast error gives the return type's zero", "LEFT('abc', 'x')", "", "cast"),
    ("§3.5 names are case-insensitive", "abs(-1) + Abs(-1) + aBs(-1)", 3, None),
    ("§3.5 unknown function", "NOPE(1)", False, "missingFunction"),
    ("§3.5 wrong arity is a missing function", "LENGTH('a', 'b')", False, "missingFunction"),
    ("§3.3 error inside a call: return type's zero", "LENGTH(LEFT('abc', -2))", 0, "functionEvaluation"),
    ("§3.3 unknown function deep inside: root zero", "LENGTH('a') + NOPE()", 0, "missingFunction"),
]


@pytest.mark.parametrize(("expression", "value", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_builtin(expression: str, value: object, error: str | None) -> None:
    result = cesql.compile(expression).evaluate({"sequence": "5"})

    assert result.value == value
    assert type(result.value) is type(value)
    assert [e.kind for e in result.errors] == ([error] if error else [])


def test_unknown_function_is_reported_at_compile_time_and_located() -> None:
    expression = cesql.compile("type = FOO(1, 2)")

    [error] = expression.static_errors
    assert isinstance(error, cesql.MissingFunctionError)
    assert str(error) == "unknown function FOO/2 at 1:8"
    assert expression.evaluate({"type": "x"}).errors == (error,)


def _registry_with(*definitions: cesql.FunctionDefinition) -> cesql.FunctionRegistry:
    registry = cesql.BUILTINS.copy()
    for definition in definitions:
        registry.register(definition)
    return registry


S, I, B = cesql.Type.STRING, cesql.Type.INTEGER, cesql.Type.BOOLEAN


def test_custom_function_gets_cast_arguments() -> None:
    has_prefix = cesql.FunctionDefinition("HASPREFIX", (S, S), B, lambda text, prefix: text.startswith(prefix))
    registry = _registry_with(has_prefix)

    assert cesql.compile("hasprefix(sequence + 10, '1')", registry).evaluate({"sequence": "5"}).value is True
    assert cesql.compile("HASPREFIX('abc', 'a')").evaluate({}).errors[0].kind == "missingFunction"


def test_custom_variadic_function() -> None:
    konkat = cesql.FunctionDefinition("KONKAT", (), S, lambda *texts: "".join(texts), variadic=S)
    registry = _registry_with(konkat)

    assert cesql.compile("KONKAT('a', 1, TRUE)", registry).evaluate({}).value == "a1true"


@pytest.mark.parametrize(
    ("implementation", "message"),
    [
        (lambda x: 1 / 0, "BOOM failed: division by zero"),
        (lambda x: "not a boolean", "BOOM returned str, not Boolean"),
    ],
    ids=["§3.5.3 raises", "§3.5.3 returns the wrong type"],
)
def test_failing_custom_function_returns_zero_and_error(implementation, message: str) -> None:
    registry = _registry_with(cesql.FunctionDefinition("BOOM", (S,), B, implementation))

    result = cesql.compile("BOOM('x')", registry).evaluate({})

    assert result.value is False
    [error] = result.errors
    assert isinstance(error, cesql.FunctionEvaluationError)
    assert error.message == message


@pytest.mark.parametrize(
    "definitions",
    [
        [cesql.FunctionDefinition("ABC", (S, S, S), I, len), cesql.FunctionDefinition("ABC", (), I, len, variadic=S)],
        [cesql.FunctionDefinition("ABC", (), I, len, variadic=S), cesql.FunctionDefinition("ABC", (S,), I, len)],
        [cesql.FunctionDefinition("ABC", (S,), I, len), cesql.FunctionDefinition("ABC", (S,), I, len)],
        [cesql.FunctionDefinition("ABC1", (S,), I, len)],
        [cesql.FunctionDefinition("LENGTH", (S,), I, len)],
    ],
    ids=[
        "§3.5 variadic after ternary",
        "§3.5 fixed arity inside variadic range",
        "§3.5 same name and arity",
        "§2.4 digits in a function name",
        "§3.5 redefining a built-in",
    ],
)
def test_invalid_overloads_are_rejected(definitions: list[cesql.FunctionDefinition]) -> None:
    with pytest.raises(cesql.FunctionRegistrationError):
        _registry_with(*definitions)


def test_valid_overload_set_from_the_spec() -> None:
    registry = _registry_with(
        cesql.FunctionDefinition("ABC", (S,), I, lambda x: 1),
        cesql.FunctionDefinition("ABC", (S, S), I, lambda x, y: 2),
        cesql.FunctionDefinition("ABC", (S, S, S), I, lambda *xs: len(xs), variadic=S),
    )

    values = [cesql.compile(text, registry).evaluate({}).value for text in
              ("ABC('a')", "ABC('a', 'b')", "ABC('a', 'b', 'c')", "ABC('a', 'b', 'c', 'd')")]
    assert values == [1, 2, 3, 4]
