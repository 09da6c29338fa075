"""CEL results spelled as CEL literals, as ``rules test`` prints them (README, Trigger rules)."""

from __future__ import annotations

import datetime

import cel
import pytest

from router.rules import celvalues

# (what the binding returns, the CEL literal a rule author would write for it)
LITERALS = {
    "false": (False, "false"),
    "true": (True, "true"),
    "null": (None, "null"),
    "int": (-3, "-3"),
    "double": (1.5, "1.5"),
    "double with exponent": (1e20, "1e+20"),
    "NaN": (float("nan"), 'double("NaN")'),
    "string": ("main", '"main"'),
    "string with quote and newline": ('a"b\n', '"a\\"b\\n"'),
    "unicode string": ("café", '"café"'),
    "bytes": (b'x"\\\x00\xff', 'b"x\\"\\\\\\x00\\xff"'),
    "list": ([1, None, "a"], '[1, null, "a"]'),
    "map": ({"a": True, "b": [False]}, '{"a": true, "b": [false]}'),
    "timestamp": (datetime.datetime(2026, 12, 1, 16, 2, 36, tzinfo=datetime.timezone.utc),
                  'timestamp("2026-12-01T16:02:36Z")'),
    "duration": (datetime.timedelta(seconds=90), 'duration("90s")'),
}


@pytest.mark.parametrize(("value", "written"), LITERALS.values(), ids=LITERALS.keys())
def test_literal(value, written):
    assert celvalues.literal(value) == written


@pytest.mark.parametrize("expression", ["false", "null", '"main"', "[1, null, \"a\"]", '{"a": true}', "1.5",
                                        'b"x\\x00"', 'timestamp("2026-12-01T16:02:36Z")', 'duration("90s")'])
def test_a_literal_reads_back_as_the_same_value(expression):
    value = cel.compile(expression).execute(cel.Context())
    assert cel.compile(celvalues.literal(value)).execute(cel.Context()) == value
