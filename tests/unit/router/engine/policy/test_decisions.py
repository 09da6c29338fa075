"""Run-policy decisions as pure functions: GCRA, dedupe windows, debounce "latest", concurrency slots.

Each runs inside a compare-and-set loop on the policy bucket (tested end to end against a real
nats-server in tests/integration/test_policies.py and test_policy_burst.py); here every branch of
the decision itself, with hand-computed expectations.
"""

from __future__ import annotations

import pytest

from router.engine.policy import concurrency, debounce, dedupe, ratelimit

NO_CHANGE = None

# rate 2 per 10s -> interval 5s
GCRA = [
    # (stored tat, now, interval, burst) -> (new tat, start)
    ("first run of a key starts now", None, 100.0, 5.0, 1, (105.0, 100.0)),
    ("stored tat in the past counts from now", 50.0, 100.0, 5.0, 1, (105.0, 100.0)),
    ("second run within the interval waits", 105.0, 100.0, 5.0, 1, (110.0, 105.0)),
    ("third run waits two intervals", 110.0, 100.0, 5.0, 1, (115.0, 110.0)),
    ("burst 2: second run still starts now", 105.0, 100.0, 5.0, 2, (110.0, 100.0)),
    ("burst 2: third run waits one interval", 110.0, 100.0, 5.0, 2, (115.0, 105.0)),
    ("tat exactly now behaves like a fresh key", 100.0, 100.0, 5.0, 1, (105.0, 100.0)),
    ("sub-second interval", 100.25, 100.0, 0.25, 1, (100.5, 100.25)),
]


@pytest.mark.parametrize("case,tat,now,interval,burst,expected", GCRA, ids=[c[0] for c in GCRA])
def test_gcra(case, tat, now, interval, burst, expected):
    assert ratelimit.gcra(tat, now, interval, burst) == pytest.approx(expected)


DEDUPE = [
    # (current entry, run, window, now) -> (duplicate of, new entry)
    ("first run of a key owns the window", None, "r1", 60.0, 1000.0, (None, {"run": "r1", "at": 1000.0})),
    ("a second run within the window is a duplicate", {"run": "r1", "at": 1000.0}, "r2", 60.0, 1059.0,
     ("r1", NO_CHANGE)),
    ("the window is measured from the first run, not extended", {"run": "r1", "at": 1000.0}, "r3", 60.0, 1060.0,
     (None, {"run": "r3", "at": 1060.0})),
    ("a redelivered event is not its own duplicate", {"run": "r1", "at": 1000.0}, "r1", 60.0, 1001.0,
     (None, NO_CHANGE)),
    ("an entry without a time is old", {"run": "r1"}, "r2", 60.0, 1000.0, (None, {"run": "r2", "at": 1000.0})),
]


@pytest.mark.parametrize("case,current,run,window,now,expected", DEDUPE, ids=[c[0] for c in DEDUPE])
def test_dedupe(case, current, run, window, now, expected):
    assert dedupe.decide(current, run, window, now) == expected


DEBOUNCE = [
    # (current latest, run, seq) -> new latest
    ("first event of a key becomes latest", None, "r1", 7, {"run": "r1", "seq": 7, "at": 5.0}),
    ("a newer event takes latest", {"run": "r1", "seq": 7}, "r2", 8, {"run": "r2", "seq": 8, "at": 5.0}),
    ("an older event arriving late does not", {"run": "r2", "seq": 8}, "r1", 7, NO_CHANGE),
    ("a redelivery of latest changes nothing", {"run": "r2", "seq": 8}, "r2", 8, NO_CHANGE),
]


@pytest.mark.parametrize("case,current,run,seq,expected", DEBOUNCE, ids=[c[0] for c in DEBOUNCE])
def test_debounce_latest(case, current, run, seq, expected):
    assert debounce.latest(current, run, seq, now=5.0) == expected


A, B, C = {"run": "a", "seq": 10}, {"run": "b", "seq": 20}, {"run": "c", "seq": 30}
CONCURRENCY = [
    # (holders, mode, run, seq, unfinished) -> (admitted, decision, holder, victims, position, new slot)
    ("replace: empty slot", [], "replace", "b", 20, set(), (True, "", "", [], 0, {"runs": [B]})),
    ("replace: newer event replaces the holder", [A], "replace", "b", 20, set(), (True, "", "", ["a"], 0, {"runs": [B]})),
    ("replace: an older event is itself replaced", [C], "replace", "b", 20, set(),
     (False, "replaced", "c", [], 0, NO_CHANGE)),
    ("replace: every older holder is a victim", [A, B], "replace", "c", 30, set(),
     (True, "", "", ["a", "b"], 0, {"runs": [C]})),
    ("forbid: empty slot", [], "forbid", "b", 20, set(), (True, "", "", [], 0, {"runs": [B]})),
    ("forbid: an unfinished holder forbids", [A], "forbid", "b", 20, {"a"}, (False, "forbidden", "a", [], 0, NO_CHANGE)),
    ("forbid: a finished holder does not", [A], "forbid", "b", 20, set(), (True, "", "", [], 0, {"runs": [B]})),
    ("queue: joins behind the holder", [A], "queue", "b", 20, set(), (True, "", "", [], 1, {"runs": [A, B]})),
    ("queue: ordered by event sequence, not arrival", [C], "queue", "b", 20, set(),
     (True, "", "", [], 0, {"runs": [B, C]})),
    ("queue: between two holders", [A, C], "queue", "b", 20, set(), (True, "", "", [], 1, {"runs": [A, B, C]})),
    ("redelivery: position kept, nothing written", [A, B], "queue", "b", 20, set(), (True, "", "", [], 1, NO_CHANGE)),
    ("redelivery under replace changes nothing", [B], "replace", "b", 20, set(), (True, "", "", [], 0, NO_CHANGE)),
    ("redelivery under forbid is not forbidden by itself", [B], "forbid", "b", 20, {"b"},
     (True, "", "", [], 0, NO_CHANGE)),
]


@pytest.mark.parametrize("case,holders,mode,run,seq,unfinished,expected", CONCURRENCY, ids=[c[0] for c in CONCURRENCY])
def test_concurrency_slot(case, holders, mode, run, seq, unfinished, expected):
    claim, new = concurrency.decide(holders, mode, run, seq, unfinished)
    assert (claim.admitted, claim.decision, claim.holder, claim.victims, claim.position, new) == expected
