"""The API the router relies on: compile once, ``evaluate``/``matches`` never raise (§1.2, §3.3)."""

from __future__ import annotations

import datetime

import pytest

from router.rules import cesql

FILTER_CASES = [
    ("§1.2 Boolean true passes", "type = 'a'", {"type": "a"}, True),
    ("§1.2 Boolean false fails", "type = 'b'", {"type": "a"}, False),
    ("§1.2 a non-Boolean result never passes", "'true'", {}, False),
    ("§1.2 an Integer result never passes", "1", {}, False),
    ("§1.2 an attribute holding true passes", "flag", {"flag": True}, True),
    ("§1.2 an attribute holding 'true' is a String", "flag", {"flag": "true"}, False),
    ("§1.2 any error fails the filter", "NOT missing", {}, False),
    ("§1.2 error on the right of OR fails", "FALSE OR 1 / 0 = 0", {}, False),
]


@pytest.mark.parametrize(("source", "attributes", "passes"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_matches(source: str, attributes: dict, passes: bool) -> None:
    expression = cesql.compile(source)

    assert expression.matches(attributes) is passes
    assert expression.evaluate(attributes).passes_filter is passes


def test_evaluation_errors_are_collected_and_located() -> None:
    expression = cesql.compile("type = 'a' AND\n  count / 0 > 1")

    result = expression.evaluate({"type": "a", "count": 3})

    assert result.value is False
    [error] = result.errors
    assert isinstance(error, cesql.MathError)
    assert (error.line, error.column) == (2, 9)
    assert str(error) == "division by zero at 2:9"


def test_expression_keeps_its_source_and_static_type() -> None:
    expression = cesql.compile("LENGTH(subject)")

    assert expression.source == "LENGTH(subject)"
    assert expression.type is cesql.Type.INTEGER
    assert expression.static_errors == ()


ATTRIBUTE_VALUES = [
    ("§3.2 datetime becomes RFC 3339 text", datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc), "2024-05-01T12:00:00Z"),
    ("§3.2 bytes become base64", b"\x00\x01", "AAE="),
    ("§3.2 integers beyond 32 bits become Strings", 2**40, str(2**40)),
    ("§3.2 other objects become Strings", 1.5, "1.5"),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in ATTRIBUTE_VALUES], ids=[c[0] for c in ATTRIBUTE_VALUES])
def test_non_primitive_attributes_are_strings(value: object, expected: str) -> None:
    assert cesql.compile("ext").evaluate({"ext": value}).value == expected


def test_attributes_are_not_mutated() -> None:
    attributes = {"type": "a", "seq": "5"}

    cesql.compile("seq + 1 = 6 AND LOWER(type) = 'a'").evaluate(attributes)

    assert attributes == {"type": "a", "seq": "5"}


def test_compiled_expression_is_reusable_across_events() -> None:
    expression = cesql.compile("source IN ('github', 'gitlab') AND EXISTS subject")

    outcomes = [expression.matches(event) for event in (
        {"source": "github", "subject": "x"},
        {"source": "harbor", "subject": "x"},
        {"source": "gitlab"},
    )]

    assert outcomes == [True, False, False]
