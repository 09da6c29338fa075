"""What one measurement is, from what Prometheus answered: empty results and NaN never pass."""

from __future__ import annotations

import json
import math

import pytest

from handlers.actions import metric_gate
from handlers.prometheus import conditions, query
from router import errors

NAN = math.nan


def vector(*values: float) -> list[query.Series]:
    return [query.Series({"pod": f"p{i}"}, [(1.0, v)]) for i, v in enumerate(values)]


@pytest.mark.parametrize("series,phase,detail", [
    (vector(0.001), "successful", "every value is < 0.01"),
    (vector(0.001, 0.002), "successful", "every value is < 0.01"),
    (vector(0.001, 0.5), "failed", '0.5 is not < 0.01 for {pod="p1"}'),
    (vector(), "inconclusive", "no data: the query returned no series"),
    (vector(NAN), "inconclusive", "NaN: no answer"),
    (vector(NAN, 0.001), "inconclusive", "NaN: no answer"),
    (vector(NAN, 0.5), "failed", "0.5 is not < 0.01"),  # a violation outweighs a missing answer
    (vector(math.inf), "failed", "inf is not < 0.01"),
    ([query.Series({}, [(1.0, 0.0), (2.0, 0.02), (3.0, 0.0)])], "failed", "0.02 is not < 0.01"),
    ([query.Series({}, [])], "inconclusive", "no data"),
])
def test_a_measurement_is_judged_on_every_sample(series, phase, detail):
    found, why, seen = metric_gate.judge(series, conditions.parse("< 0.01"))
    assert (found, why.startswith(detail) or detail in why) == (phase, True), why
    json.dumps(seen, allow_nan=False)  # the values go into the outcome, which is JSON


def test_nan_is_written_as_prometheus_spells_it():
    _, _, seen = metric_gate.judge(vector(NAN), conditions.parse("< 1"))
    assert seen == [{"labels": {"pod": "p0"}, "value": "NaN"}]


@pytest.mark.parametrize("data,expected", [
    ({"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [1, "0.5"]}]},
     [query.Series({"a": "b"}, [(1.0, 0.5)])]),
    ({"resultType": "scalar", "result": [2, "NaN"]}, None),
    ({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"], [2, "+Inf"]]}]},
     [query.Series({}, [(1.0, 1.0), (2.0, math.inf)])]),
    ({"resultType": "vector", "result": []}, []),
])
def test_every_result_type_becomes_series(data, expected):
    found = query.parse(data)
    if expected is None:
        assert len(found) == 1 and math.isnan(found[0].values[0][1])
    else:
        assert found == expected


def test_a_string_result_is_refused():
    with pytest.raises(errors.PermanentError, match="answers a 'string', not a number"):
        query.parse({"resultType": "string", "result": [1, "x"]})
