"""Evaluation of every operator, the casting rules and the error semantics of CESQL v1.

Each case is (spec section and what it shows, expression, attributes, value, error kind).
``error`` is the spec's error kind name (§3.3) or None for "no error".
"""

from __future__ import annotations

import pytest

from router.rules import cesql

EVENT = {
    "specversion": "1.0",
    "id": "myId",
    "source": "http://localhost/source",
    "type": "com.github.push",
}

CASES = [
    # §2.2 literals
    ("§2.2 TRUE literal", "TRUE", {}, True, None),
    ("§2.2 false literal, any case", "fAlSe", {}, False, None),
    ("§2.2 integer literal", "1", {}, 1, None),
    ("§2.2 signed integer literal", "+7", {}, 7, None),
    ("§2.2 most negative integer literal", "-2147483648", {}, -2147483648, None),
    ("§2.2 single-quoted string", "'abc'", {}, "abc", None),
    ("§2.2 double-quoted string", '"AbC"', {}, "AbC", None),
    ("§2.2 escaped quote in single-quoted string", "'a\"b\\'c'", {}, "a\"b'c", None),
    ("§2.2 escaped quote in double-quoted string", '"a\'b\\"c"', {}, "a'b\"c", None),
    ("§2.2 other backslashes are kept", "'ab\\c'", {}, "ab\\c", None),
    ("§2.2 doubled quote (CESQLLexer.g4)", "'it''s'", {}, "it's", None),
    ("§2.1 sub-expression", "(TRUE)", {}, True, None),
    # §3.2 attributes
    ("§3.2 required attribute", "id", {}, "myId", None),
    ("§3.2 string extension", "myext", {"myext": "my extension"}, "my extension", None),
    ("§3.2 integer extension", "myint", {"myint": 10}, 10, None),
    ("§3.2 boolean extension", "mybool", {"mybool": True}, True, None),
    ("§3.2 URI is a String", "source", {}, "http://localhost/source", None),
    ("§3.2 timestamp is a String", "time", {"time": "2018-04-26T14:48:09+02:00"}, "2018-04-26T14:48:09+02:00", None),
    ("§3.2 missing attribute alone: Boolean zero", "subject", {}, False, "missingAttribute"),
    ("§3.2 None counts as missing", "subject", {"subject": None}, False, "missingAttribute"),
    ("§3.2 true AND (missing = '') is false", "true AND (missingattribute = \"\")", {}, False, "missingAttribute"),
    ("§3.2 missing * 5 is Integer zero", "missingattribute * 5", {}, 0, "missingAttribute"),
    ("§3.2 1 / missing is not a MathError", "1 / missingattribute", {}, 0, "missingAttribute"),
    ("§3.2 missing / 0 is not a MathError", "missing / 0", {}, 0, "missingAttribute"),
    ("§3.2 missing % 0 is not a MathError", "missing % 0", {}, 0, "missingAttribute"),
    ("§3.2 missing in LIKE", "myext LIKE 'custom%'", {}, False, "missingAttribute"),
    ("§3.2 missing in function argument", "LOWER(missing)", {}, "", "missingAttribute"),
    # §3.4.1 unary operators
    ("§3.4.1 NOT true", "NOT TRUE", {}, False, None),
    ("§3.4.1 NOT casts String", "NOT 'FALSE'", {}, True, None),
    ("§3.4.1 NOT casts Integer (§3.7)", "NOT 10", {}, False, None),
    ("§3.4.1 NOT with bad cast", "NOT 'abc'", {}, False, "cast"),
    ("§3.4.1 NOT missing", "NOT missing", {}, False, "missingAttribute"),
    ("§3.4.1 minus minus", "--10", {}, 10, None),
    ("§3.4.1 minus casts String", "-'10'", {}, -10, None),
    ("§3.4.1 minus casts Boolean", "-TRUE", {}, -1, None),
    ("§3.4.1 minus missing", "-missing", {}, 0, "missingAttribute"),
    ("§3.4.1 minus overflow mirrors ABS", "-(-2147483648)", {}, 2147483647, "math"),
    # §3.4.2 arithmetic
    ("§3.6 * before +", "4 * 2 + 4 / 2", {}, 10, None),
    ("§3.6 parentheses", "4 * (2 + 4) / 2", {}, 12, None),
    ("§3.4.2 division truncates", "5 / 3", {}, 1, None),
    ("§3.4.2 division truncates towards 0", "-5 / 3", {}, -1, None),
    ("§3.4.2 division by zero", "5 / 0", {}, 0, "math"),
    ("§3.4.2 modulo", "5 % 2", {}, 1, None),
    ("§3.4.2 modulo takes the sign of x", "-5 % 3", {}, -2, None),
    ("§3.4.2 modulo sign ignores y", "5 % -3", {}, 2, None),
    ("§3.4.2 modulo by zero", "5 % 0", {}, 0, "math"),
    ("§3.4.2 negative plus negative", "-4 + -1", {}, -5, None),
    ("§3.4.2 minus without spaces", "4-1", {}, 3, None),
    ("§3.4.2 overflow on +", "2147483647 + 1", {}, 0, "math"),
    ("§3.4.2 overflow on *", "65536 * 65536", {}, 0, "math"),
    ("§3.4.2 overflow on /", "-2147483648 / -1", {}, 0, "math"),
    ("§3.7 + casts left String", "'5' + 3", {}, 8, None),
    ("§3.7 + casts both Strings", "'5' + '3'", {}, 8, None),
    ("§3.7 + casts Boolean", "5 + TRUE", {}, 6, None),
    ("§3.7 + with bad cast", "'five' + 3", {}, 0, "cast"),
    ("§3.7 String->Integer rejects spaces", "' 5' + 3", {}, 0, "cast"),
    ("§3.7 String->Integer overflow", "'2147483648' + 0", {}, 0, "cast"),
    ("§3.7 String->Integer leading +", "'+5' + 0", {}, 5, None),
    # §3.4.2 comparison
    ("§3.4.2 1 = 2", "1 = 2", {}, False, None),
    ("§3.4.2 'abc' = 'abc'", "'abc' = 'abc'", {}, True, None),
    ("§3.4.2 string equality is case sensitive", "'abc' = 'ABC'", {}, False, None),
    ("§3.4.2 !=", "TRUE != FALSE", {}, True, None),
    ("§3.4.2 <> is !=", "2 <> 2", {}, False, None),
    ("§3.4.2 <", "1 < 2", {}, True, None),
    ("§3.4.2 <=", "2 <= 2", {}, True, None),
    ("§3.4.2 >", "2 > 2", {}, False, None),
    ("§3.4.2 >=", "2 >= 3", {}, False, None),
    ("§3.4.2 < casts Strings to Integer", "'10' > '9'", {}, True, None),
    ("§3.4.2 < with bad cast", "'a' < 1", {}, False, "cast"),
    ("§3.4.2 = with missing", "missing = 2", {}, False, "missingAttribute"),
    ("§3.4.2 != with missing", "missing != 2", {}, False, "missingAttribute"),
    ("§3.7 = casts left to right's type (String)", "true = 'TRUE'", {}, False, None),
    ("§3.7 = casts left to right's type (Boolean)", "'TRUE' = true", {}, True, None),
    ("§3.7 TRUE = 'true' AND FALSE = 'false'", "TRUE = \"true\" AND FALSE = \"false\"", {}, True, None),
    ("§3.7 TRUE = 'TRUE' OR FALSE = 'FALSE'", "TRUE = \"TRUE\" OR FALSE = \"FALSE\"", {}, False, None),
    ("§3.7 sequence = 10 casts sequence", "sequence = 10", {"sequence": "10"}, True, None),
    ("§3.7 = with bad cast", "'abc' = 1", {}, False, "cast"),
    ("§3.7 = between two attributes uses right type", "a = b", {"a": "1", "b": 1}, True, None),
    # §3.4.2 logic
    ("§3.4.2 AND", "TRUE AND FALSE", {}, False, None),
    ("§3.4.2 OR", "FALSE OR TRUE", {}, True, None),
    ("§3.4.2 XOR", "TRUE XOR TRUE", {}, False, None),
    ("§3.4.2 XOR mixed", "FALSE XOR TRUE", {}, True, None),
    ("§3.4.2 AND short-circuits", "false and (1 != 1 / 0)", {}, False, None),
    ("§3.4.2 AND evaluates right when left is true", "true and (1 != 1 / 0)", {}, False, "math"),
    ("§3.4.2 OR short-circuits", "true or (1 != 1 / 0)", {}, True, None),
    ("§3.4.2 OR evaluates right when left is false", "false or (1 != 1 / 0)", {}, False, "math"),
    ("§3.4.2 AND short-circuits a missing attribute", "FALSE AND missing", {}, False, None),
    ("§3.4.2 AND casts operands", "'true' AND 1", {}, True, None),
    ("§3.6 AND/OR/XOR left to right", "TRUE OR TRUE AND FALSE", {}, False, None),
    ("§3.6 AND/OR/XOR left to right (2)", "FALSE AND TRUE OR TRUE", {}, True, None),
    # §3.4.3 LIKE
    ("§3.4.3 exact", "'abc' LIKE 'abc'", {}, True, None),
    ("§3.4.3 backslash before other char is literal", "'ab\\c' LIKE 'ab\\c'", {}, True, None),
    ("§3.4.3 NOT LIKE", "'abc' NOT LIKE 'abc'", {}, False, None),
    ("§3.4.3 % in the middle", "'azzzbzzzc' LIKE 'a%b%c'", {}, True, None),
    ("§3.4.3 % matches nothing", "'abc' LIKE 'a%b%c'", {}, True, None),
    ("§3.4.3 empty value", "'' LIKE 'abc'", {}, False, None),
    ("§3.4.3 dots are literal", "'ab.cde' LIKE '.%.%.'", {}, False, None),
    ("§3.4.3 _ is one character", "'azbzc' LIKE 'a_b_c'", {}, True, None),
    ("§3.4.3 _ is exactly one", "'abc' LIKE 'a_b_c'", {}, False, None),
    ("§3.4.3 spec example _b* (ab)", "'ab' LIKE '_b%'", {}, True, None),
    ("§3.4.3 spec example _b* (acd)", "'acd' LIKE '_b%'", {}, False, None),
    ("§3.4.3 case sensitive", "'aBc' LIKE '_b%'", {}, False, None),
    ("§3.4.3 escaped %", "'abc%' LIKE 'abc\\%'", {}, True, None),
    ("§3.4.3 escaped % is not a wildcard", "'abcd' LIKE 'abc\\%'", {}, False, None),
    ("§3.4.3 escaped _", "'a_b_c' LIKE 'a\\_b\\_c'", {}, True, None),
    ("§3.4.3 escaped _ is not a wildcard", "'azbzc' LIKE 'a\\_b\\_c'", {}, False, None),
    ("§3.4.3 mixed escapes on attribute", "myext LIKE 'abc%123\\%456\\_d_f'", {"myext": "abc123123%456_dzf"}, True, None),
    ("§3.4.3 prefix", "type LIKE 'com.github.%'", {}, True, None),
    ("§3.4.3 suffix", "type like '%.push'", {}, True, None),
    ("§3.4.3 infix", "type LIKE '%github%'", {}, True, None),
    ("§3.4.3 % matches newlines", "'a\nb' LIKE 'a%b'", {}, True, None),
    ("§3.4.3 Integer cast to String", "2344 LIKE '23%'", {}, True, None),
    ("§3.4.3 Boolean cast to String", "TRUE LIKE 'tr%'", {}, True, None),
    ("§3.4.3 ANY escape-free pattern", "'x' LIKE '%'", {}, True, None),
    # §3.4.4 EXISTS
    ("§3.4.4 EXISTS present", "EXISTS subject", {"subject": "x"}, True, None),
    ("§3.4.4 EXISTS absent", "EXISTS subject", {}, False, None),
    ("§3.4.4 EXISTS id is always true", "EXISTS id", {"id": None}, True, None),
    # §3.4.5 IN
    ("§3.4.5 IN strings", "source IN ('a', 'http://localhost/source')", {}, True, None),
    ("§3.4.5 IN no match", "'x' IN ('a', 'b')", {}, False, None),
    ("§3.4.5 NOT IN", "'x' NOT IN ('a', 'b')", {}, True, None),
    ("§3.4.5 elements cast to the left type", "1 IN ('1', 2)", {}, True, None),
    ("§3.4.5 String left casts Integer elements", "'2' IN (1, 2)", {}, True, None),
    ("§3.4.5 Boolean left", "TRUE IN ('false', 'true')", {}, True, None),
    ("§3.4.5 first match wins before a bad element", "1 IN (1, 'a')", {}, True, None),
    ("§3.4.5 bad element before any match", "1 IN ('a', 1)", {}, False, "cast"),
    ("§3.4.5 non-literal elements", "x IN (y, z)", {"x": 3, "y": "2", "z": "3"}, True, None),
    ("§3.4.5 missing element", "x IN (missing, 1)", {"x": 1}, False, "missingAttribute"),
    ("§3.4.5 missing left operand", "missing IN ('a')", {}, False, "missingAttribute"),
    ("§3.4.5 NOT IN with error is false", "1 NOT IN ('a')", {}, False, "cast"),
    # §3.6 precedence of unary operators
    ("§3.6 NOT binds tighter than =", "NOT FALSE = FALSE", {}, False, None),
    ("§3.6 - binds tighter than *", "-2 * 3", {}, -6, None),
    ("§3.6 LIKE binds tighter than +", "1 + TRUE LIKE 'true'", {}, 2, None),
    # §5 examples
    ("§5 EXISTS subject", "EXISTS subject", {"subject": "Francesco Guardiani"}, True, None),
    ("§5 firstname", "firstname = 'Francesco'", {"firstname": "Francesco"}, True, None),
    ("§5 firstname OR subject", "firstname = 'Francesco' OR subject = 'Francesco'", {"firstname": "Doug", "subject": "Francesco"}, True, None),
    (
        "§5 grouped AND inside OR",
        "(firstname = 'Francesco' AND lastname = 'Guardiani') OR subject = 'Francesco Guardiani'",
        {"subject": "Francesco Guardiani", "firstname": "Doug", "lastname": "Davis"},
        True,
        None,
    ),
    ("§5 sequence = 10", "sequence = 10", {"sequence": 10}, True, None),
    ("§5 sequence = 10 (String extension)", "sequence = 10", {"sequence": "11"}, False, None),
    ("§5 hop < ttl", "hop < ttl", {"hop": "5", "ttl": "10"}, True, None),
    ("§2 case-insensitive keywords", "int(hop) < int(ttl) and int(hop) < 1000", {"hop": "5", "ttl": "10"}, True, None),
    ("§2 upper-case keywords", "INT(hop) < INT(ttl) AND INT(hop) < 1000", {"hop": "5", "ttl": "10"}, True, None),
]


@pytest.mark.parametrize(
    ("expression", "attributes", "value", "error"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_evaluation(expression: str, attributes: dict, value: object, error: str | None) -> None:
    result = cesql.compile(expression).evaluate({**EVENT, **attributes})

    assert result.value == value
    assert type(result.value) is type(value)
    assert [e.kind for e in result.errors] == ([error] if error else [])
