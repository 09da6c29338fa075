"""Grammar (§2), precedence (§3.6) and parse errors with positions a rule author can use."""

from __future__ import annotations

import pytest

from router.rules import cesql
from router.rules.cesql import parser, syntax

GROUPING = [
    ("§3.6 * before +", "1 + 2 * 3", "(1 + (2 * 3))"),
    ("§3.6 left to right on equal precedence", "8 - 4 - 2", "((8 - 4) - 2)"),
    ("§3.6 comparison below arithmetic", "a + 1 = b * 2", "((a + 1) = (b * 2))"),
    ("§3.6 AND/OR/XOR share a level, left to right", "a OR b AND c XOR d", "(((a OR b) AND c) XOR d)"),
    ("§3.6 NOT binds tightest", "NOT a = b", "((NOT a) = b)"),
    ("§3.6 NOT before LIKE", "NOT a LIKE 'x'", "((NOT a) LIKE 'x')"),
    ("§3.6 unary minus before *", "-a * b", "((- a) * b)"),
    ("§3.6 LIKE before +", "a + b LIKE 'x'", "(a + (b LIKE 'x'))"),
    ("§3.6 IN before =", "a = b IN (1)", "(a = (b IN (1)))"),
    ("§2.3 NOT LIKE", "a NOT LIKE 'x%'", "(a NOT LIKE 'x%')"),
    ("§2.3 NOT IN", "a NOT IN ('x', 'y')", "(a NOT IN ('x', 'y'))"),
    ("§2.3 EXISTS", "EXISTS a AND b", "((EXISTS a) AND b)"),
    ("§2.3 <> is !=", "a <> b", "(a != b)"),
    ("§2.4 function call", "concat_ws(',', a, 1)", "CONCAT_WS(',', a, 1)"),
    ("§2.4 nested calls", "LOWER(TRIM(a))", "LOWER(TRIM(a))"),
    ("§2.2 digits-only and digit-first identifiers", "a1 = 1a", "(a1 = 1a)"),
    ("§2 keywords in any case", "true aNd NoT false", "(TRUE AND (NOT FALSE))"),
    ("§2.1 redundant parentheses", "((a))", "a"),
    ("§2 whitespace incl. newlines", "a\n=\t1", "(a = 1)"),
    ("§2.2 sign glued to a literal after an operator", "1 - -1", "(1 - -1)"),
]


@pytest.mark.parametrize(("source", "expected"), [g[1:] for g in GROUPING], ids=[g[0] for g in GROUPING])
def test_grouping(source: str, expected: str) -> None:
    assert syntax.render(parser.parse(source)) == expected


PARSE_ERRORS = [
    ("§2.1 unclosed parenthesis", "(a = 1", 6, "expected ')' at 1:7 but found end of input"),
    ("§2.4 unclosed call", "LENGTH(a, ", 10, "expected an expression at 1:11 but found end of input"),
    ("§2.1 empty input", "", 0, "expected an expression at 1:1 but found end of input"),
    ("§2.1 dangling operator", "a = ", 4, "expected an expression at 1:5 but found end of input"),
    ("§2.1 two operands", "a b", 2, "expected an operator or end of input at 1:3 but found 'b'"),
    ("§2.2 integer above 32 bits", "2147483648", 0, "integer literal 2147483648 is outside the 32-bit range [-2147483648, 2147483647] at 1:1"),
    ("§2.2 integer below 32 bits", "x = -2147483649", 4, None),
    ("§2.2 unterminated string", "a = 'abc", 4, "unterminated string literal: missing closing ' at 1:5"),
    ("§2.2 upper-case attribute", "Subject = 'x'", 0, "attribute names are lowercase: write 'subject' instead of 'Subject' at 1:1"),
    ("§2.2 underscore in attribute", "my_ext = 'x'", 0, None),
    ("§2.4 digits in function name", "F1(a)", 0, None),
    ("§2.2 unknown character", "a = #", 4, "unexpected character '#' at 1:5"),
    ("§2.3 bare NOT after operand", "a NOT b", 6, "expected LIKE or IN after NOT at 1:7 but found 'b'"),
    ("§3.4.3 LIKE pattern must be a literal", "a LIKE b", 7, "the LIKE pattern must be a string literal at 1:8 but found 'b'"),
    ("§3.4.3 LIKE pattern cannot be an Integer", "a LIKE 1", 7, None),
    ("§2.3 empty IN set", "a IN ()", 6, "an IN set needs at least one element at 1:7"),
    ("§2.3 IN without set", "a IN 'x'", 5, None),
    ("§2.3 EXISTS needs a name", "EXISTS 'a'", 7, None),
    ("§2.2 unary plus is not an operator", "+a", 0, None),
    ("§2.1 unbalanced closing parenthesis", "a = 1)", 5, None),
    ("§2 error on a later line", "a = 1 AND\n  b = )", 16, "expected an expression at 2:7 but found ')'"),
]


@pytest.mark.parametrize(
    ("source", "position", "message"), [p[1:] for p in PARSE_ERRORS], ids=[p[0] for p in PARSE_ERRORS]
)
def test_parse_error(source: str, position: int, message: str | None) -> None:
    with pytest.raises(cesql.ParseError) as raised:
        cesql.compile(source)

    assert raised.value.position == position
    assert raised.value.kind == "parse"
    if message is not None:
        assert str(raised.value) == message


def test_parse_error_exposes_line_column_and_message() -> None:
    with pytest.raises(cesql.ParseError) as raised:
        cesql.compile("type = 'a' AND\n(subject = 'b'")

    error = raised.value
    assert (error.line, error.column) == (2, 15)
    assert error.message == "expected ')' but found end of input"
