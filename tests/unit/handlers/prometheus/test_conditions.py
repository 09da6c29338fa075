"""Gate conditions as users write them in rules (README, Actions: ``metricGate``)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from handlers.actions import metric_gate
from handlers.prometheus import conditions


@pytest.mark.parametrize("text,value,holds", [
    ("< 0.01", 0.005, True), ("< 0.01", 0.01, False), ("<0.01", 0.2, False),
    (">= 0.99", 0.99, True), (">= 0.99", 0.98, False),
    ("== 0", 0.0, True), ("== 0", 1.0, False), ("!= 0", 1.0, True),
    ("> -1", 0.0, True), ("<= 1e-3", 0.001, True), (" < .5 ", 0.4, True),
])
def test_a_condition_compares_one_number(text, value, holds):
    assert conditions.parse(text).holds(value) is holds


@pytest.mark.parametrize("text", ["", "0.01", "< ", "<< 1", "~ 1", "< 1 %", "< inf", "< x", "< 1 and > 0"])
def test_what_is_no_condition_is_refused_with_how_to_write_one(text):
    with pytest.raises(conditions.NotACondition, match="is not a condition|not a finite number"):
        conditions.parse(text)


def test_nan_satisfies_no_condition():
    assert not conditions.parse("< 1").holds(math.nan) and not conditions.parse(">= 0").holds(math.nan)


def test_a_bad_condition_fails_at_rule_load():
    with pytest.raises(ValidationError, match="'below 1' is not a condition"):
        metric_gate.MetricGate.model_validate(
            {"url": "http://p", "queries": [{"query": "up", "condition": "below 1"}]})


def test_a_gate_whose_measurements_cannot_fit_its_outcome_is_refused_at_rule_load():
    queries = [{"query": "up", "condition": "== 1"}, {"query": "up", "condition": "== 1"}]
    metric_gate.MetricGate.model_validate({"url": "http://p", "window": "4m", "interval": "1s", "queries": queries})
    with pytest.raises(ValidationError, match="is 722 measurements, over the 600 an outcome lists"):
        metric_gate.MetricGate.model_validate({"url": "http://p", "window": "6m", "interval": "1s", "queries": queries})
