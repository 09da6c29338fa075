"""Runs-page filters: what each query parameter admits, and refusals that name the parameter."""

from __future__ import annotations

import datetime
import json

import pytest

from router import errors
from router.model import events
from router.web import history

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
HOUR = 3600


def state(rule="smoke", outcome="success", finished=True, queued_ago=60):
    found = {"runId": "r", "rule": rule, "state": "finished" if finished else "running", "queuedAt": NOW - queued_ago}
    if finished:
        found["outcome"] = outcome
    return found


@pytest.mark.parametrize("query,admitted,refused", [
    ({}, state(), None),
    ({"rule": "smoke"}, state(), state(rule="other")),
    ({"rule": " smoke "}, state(), None),                                        # spaces around are dropped
    ({"outcome": "failure"}, state(outcome="failure"), state(outcome="success")),
    ({"outcome": "failure"}, state(outcome="failure"), state(finished=False)),   # unfinished has no outcome
    ({"outcome": "unfinished"}, state(finished=False), state(outcome="error")),
    ({"since": "2h"}, state(queued_ago=HOUR), state(queued_ago=3 * HOUR)),
    ({"since": "90m"}, state(queued_ago=HOUR), state(queued_ago=2 * HOUR)),
    ({"since": "2026-12-01T11:30:00Z"}, state(queued_ago=HOUR // 4), state(queued_ago=HOUR)),
    ({"since": "2026-12-01T11:30:00"}, state(queued_ago=HOUR // 4), state(queued_ago=HOUR)),  # no offset: UTC
    ({"since": "2026-12-01T12:30:00+01:00"}, state(queued_ago=HOUR // 4), state(queued_ago=HOUR)),
    ({"since": "2026-12-01"}, state(queued_ago=11 * HOUR), state(queued_ago=13 * HOUR)),
    ({"rule": "smoke", "outcome": "error"}, state(outcome="error"), state(rule="x", outcome="error")),
])
def test_filters_admit(query, admitted, refused):
    filters = history.Filters.parse(query, NOW)
    assert filters.admits(admitted)
    if refused is not None:
        assert not filters.admits(refused)


@pytest.mark.parametrize("query,field", [
    ({"outcome": "passed"}, "outcome"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-13-01"}, "since"),
])
def test_bad_filters_are_refused_naming_the_parameter(query, field):
    with pytest.raises(errors.BadRequest) as refused:
        history.Filters.parse(query, NOW)
    assert refused.value.field == field


def test_select_keeps_order_and_counts_what_the_limit_cut():
    states = [state(queued_ago=i) for i in range(5)] + [state(rule="other")]
    shown, admitted = history.Filters.parse({"rule": "smoke", "limit": "2"}, NOW).select(states)
    assert [s["queuedAt"] for s in shown] == [NOW, NOW - 1] and admitted == 5


@pytest.mark.parametrize("fields,expected", [
    ({"durationSeconds": 1.5}, 1.5),
    ({"startedAt": NOW - 3, "finishedAt": NOW}, 3.0),
    ({"startedAt": NOW}, None),                                  # still running
    ({}, None),
])
def test_duration(fields, expected):
    assert history.duration(fields) == expected


def test_row_of_a_run_state():
    row = history.row({"runId": "a" * 32, "rule": "smoke", "state": "finished", "outcome": "cancel",
                       "reason": "replaced by run b", "decision": "replaced", "queuedAt": NOW,
                       "event": {"id": "e-1", "type": "com.github.push"}})
    assert (row.run_id, row.queued, row.event_type, row.event_id) == ("a" * 32, "2026-12-01T12:00:00Z",
                                                                     "com.github.push", "e-1")
    assert row.policy == "replaced by run b"  # the CLI's POLICY column, same words
    assert history.row({"runId": "b", "decision": "debounced", "notBefore": NOW, "state": "queued"}).policy == \
        "debounced until 2026-12-01T12:00:00Z"


def test_a_large_event_is_cut_and_says_how_much():
    big = events.make({"id": "big", "source": "/s", "type": "t"}, {"blob": "x" * 100_000})
    text, cut = history.event_json(big)
    assert len(text.encode()) <= history.EVENT_SHOWN_BYTES and cut > 30_000
    small = events.make({"id": "small", "source": "/s", "type": "t"}, {"a": 1})
    text, cut = history.event_json(small)
    assert cut == 0 and '\n  "data": {\n    "a": 1\n  }' in text  # indented for reading
    assert json.loads(text) == {"specversion": "1.0", "id": "small", "source": "/s", "type": "t",
                                "datacontenttype": "application/json", "data": {"a": 1}}
