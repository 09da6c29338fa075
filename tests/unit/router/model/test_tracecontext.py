"""W3C trace context on events: what is accepted, what is passed on, what starts a new trace."""

from __future__ import annotations

import pytest

from router.model import cdevents, events, tracecontext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value, parsed", [
    (PARENT, (TRACE, "00f067aa0ba902b7", "01")),
    (f"00-{TRACE}-00f067aa0ba902b7-00", (TRACE, "00f067aa0ba902b7", "00")),
    (f"01-{TRACE}-00f067aa0ba902b7-01-future", (TRACE, "00f067aa0ba902b7", "01")),  # a later version may add fields
    (f"00-{TRACE}-00f067aa0ba902b7-01-extra", None),  # version 00 may not
    (f"ff-{TRACE}-00f067aa0ba902b7-01", None),
    (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
    (f"00-{TRACE}-{'0' * 16}-01", None),
    (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", None),
    (f"00-{TRACE[:-1]}-00f067aa0ba902b7-01", None),
    ("", None), (None, None), (42, None),
])
def test_parse(value, parsed):
    assert tracecontext.parse(value) == parsed


def test_an_event_keeps_its_own_trace_over_the_requests():
    event = events.make({"id": "1", "source": "/s", "type": "t", "traceparent": PARENT, "tracestate": "a=1"})
    kept = tracecontext.ensure(event, {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"})
    assert kept.attributes["traceparent"] == PARENT and kept.attributes["tracestate"] == "a=1"


def test_the_requests_trace_goes_to_events_without_one():
    event = events.make({"id": "1", "source": "/s", "type": "t"})
    given = tracecontext.ensure(event, tracecontext.of_request({"Traceparent": PARENT, "tracestate": "vendor=x"}))
    assert given.attributes["traceparent"] == PARENT and given.attributes["tracestate"] == "vendor=x"


@pytest.mark.parametrize("headers", [{}, {"traceparent": "garbage"}, {"traceparent": f"00-{'0' * 32}-{'2' * 16}-01"}])
def test_a_new_trace_is_started_when_none_valid_came_in(headers):
    event = events.make({"id": "1", "source": "/s", "type": "t", "tracestate": "orphan=1"})
    started = tracecontext.ensure(event, tracecontext.of_request(headers))
    assert tracecontext.valid(started.attributes["traceparent"])
    assert "tracestate" not in started.attributes  # it belonged to no valid traceparent
    assert started.attributes["traceparent"] != headers.get("traceparent")


def test_an_invalid_trace_on_the_event_is_replaced():
    event = events.make({"id": "1", "source": "/s", "type": "t", "traceparent": "00-xyz"})
    assert tracecontext.valid(tracecontext.ensure(event).attributes["traceparent"])


def test_caused_events_continue_the_trace_with_a_span_of_their_own():
    trigger = events.make({"id": "1", "source": "/s", "type": "t", "traceparent": PARENT, "tracestate": "a=1"})
    outcome = cdevents.derive(trigger, "dev.cdevents.testsuiterun.queued.0.3.0", subject_id="r", content={})
    trace, span, flags = tracecontext.parse(outcome.attributes["traceparent"])
    assert (trace, flags) == (TRACE, "01") and span != "00f067aa0ba902b7"
    assert outcome.attributes["tracestate"] == "a=1"


def test_an_untraced_cause_gives_no_trace_to_be_filled_in_later():
    trigger = events.make({"id": "1", "source": "/s", "type": "t"})
    derived = cdevents.derive(trigger, "dev.cdevents.testsuiterun.queued.0.3.0", subject_id="r", content={})
    assert "traceparent" not in derived.attributes
