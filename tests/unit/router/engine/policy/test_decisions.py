"""Run-policy decisions as pure functions: GCRA, dedupe windows, debounce "latest", concurrency slots.

Each runs inside a compare-and-set loop on the policy bucket (tested end to end against a real
nats-server in tests/integration/test_policies.py and test_policy_burst.py); here every branch of
the decision itself, with hand-computed expectations.
"""

from __future__ import annotations

import pytest

from router.engine.policy import backlog, concurrency, debounce, dedupe, gate, ratelimit

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
    ("queue: an older event does not jump the head, which may be running", [C], "queue", "b", 20, set(),
     (True, "", "", [], 1, {"runs": [C, B]})),
    ("queue: behind the head, ordered by event sequence, not arrival", [A, C], "queue", "x", 15, set(),
     (True, "", "", [], 1, {"runs": [A, {"run": "x", "seq": 15}, C]})),
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


@pytest.mark.parametrize("case,holders,limit,expected", [
    # a queue holding `limit` runs behind its head takes no more
    ("room behind the head", [A, B], 2, (True, "", 2, {"runs": [A, B, C]})),
    ("full: limit runs already wait", [A, B], 1, (False, "backlog-full", 1, NO_CHANGE)),
    ("an empty queue always admits", [], 0, (True, "", 0, {"runs": [C]})),
    ("a redelivered run is not refused", [A, B, C], 1, (True, "", 2, NO_CHANGE)),
])
def test_queue_limit(case, holders, limit, expected):
    claim, new = concurrency.decide(holders, "queue", "c", 30, limit=limit)
    assert (claim.admitted, claim.decision, claim.waiting, new) == expected


RELEASED = [
    # (slot, run released, started the moment the previous head left, now) -> new slot
    ("the head leaves; the next one's time starts", {"runs": [A, B], "since": 10.0}, "a", True, 12.0,
     {"runs": [B], "since": 12.0, "head": 12.0, "pace": 2.0, "samples": 1}),
    ("a head picked up late measures nothing", {"runs": [A, B], "since": 10.0, "pace": 1.0}, "a", False, 12.0,
     {"runs": [B], "since": 12.0, "head": 12.0, "pace": 1.0}),
    ("the first head (no previous release) measures nothing", {"runs": [A, B], "head": 10.0}, "a", True, 12.0,
     {"runs": [B], "since": 12.0, "head": 12.0}),
    ("the pace moves towards a faster queue", {"runs": [A, B], "since": 10.0, "pace": 4.0, "samples": 3},
     "a", True, 12.0, {"runs": [B], "since": 12.0, "head": 12.0, "pace": 3.6, "samples": 4}),
    ("one slow run counts at most 1.5x the pace", {"runs": [A, B], "since": 10.0, "pace": 2.0},
     "a", True, 20.0, {"runs": [B], "since": 20.0, "head": 20.0, "pace": 2.2, "samples": 1}),
    ("a waiting run leaving changes neither", {"runs": [A, B, C], "since": 10.0, "pace": 2.0}, "b", True, 11.0,
     {"runs": [A, C], "since": 10.0, "pace": 2.0}),
    ("an empty slot forgets the pace", {"runs": [A], "since": 10.0, "pace": 2.0}, "a", True, 11.0, {"runs": []}),
    ("a run not in the slot changes nothing", {"runs": [A], "since": 10.0}, "b", True, 11.0, NO_CHANGE),
]


@pytest.mark.parametrize("case,current,run,flowing,now,expected", RELEASED, ids=[c[0] for c in RELEASED])
def test_queue_release_and_pace(case, current, run, flowing, now, expected):
    new = concurrency.released(current, run, now, flowing)
    if expected is NO_CHANGE:
        assert new is NO_CHANGE
        return
    assert new.get("pace") == pytest.approx(expected.get("pace"))
    assert {k: v for k, v in new.items() if k != "pace"} == {k: v for k, v in expected.items() if k != "pace"}


@pytest.mark.parametrize("position,pace,head_for,expected", [
    (1, None, 0.2, 0.5),       # nothing measured yet: poll
    (900, None, 120.0, 30.0),  # a long first run: poll slower, up to the cap
    (104, 0.1, 0.0, 5.0),      # 100 runs ahead of the held ones, 0.1 s each: look again halfway
    (4, 0.1, 0.0, 0.1),        # couldn't be held: halfway to the head
    (5000, 0.1, 0.0, 30.0),    # capped
    (6, 0.001, 0.0, 0.02),     # floored
])
def test_queue_wait(position, pace, head_for, expected):
    queue = concurrency.Queue(["h"], pace, head_for)
    assert gate.queue_wait(position, queue) == pytest.approx(expected)


@pytest.mark.parametrize("start,now,interval,expected", [
    (100.0, 100.0, 0.5, 0),  # starts now: not waiting
    (100.5, 100.0, 0.5, 1),
    (102.0, 100.0, 0.5, 4),
    (100.2, 100.0, 0.5, 1),  # part of an interval is still a wait
])
def test_rate_limit_waiting(start, now, interval, expected):
    assert ratelimit.waiting(start, now, interval) == expected


@pytest.mark.parametrize("case,current,seq,expected", [
    ("a quiet key: a new waiting run", None, 7, False),
    ("latest still waiting: replaced, nothing added", {"seq": 5, "at": 99.5}, 7, True),
    ("latest already due: a new waiting run", {"seq": 5, "at": 98.0}, 7, False),
    ("an older event than latest adds nothing", {"seq": 9, "at": 90.0}, 7, True),
])
def test_debounce_pending(case, current, seq, expected):
    assert debounce.pending(current, seq, debounce=1.0, now=100.0) is expected


def test_backlog_counts_due_runs_until_due_and_refuses_past_the_limit():
    ledger = None
    for due in (101.5, 102.5, 102.7):
        refused, ledger = backlog.add_due(ledger, due, now=100.0, width=1.0, limit=3)
        assert refused is None
    assert ledger == {"due": {"102": 1, "103": 2}, "queues": {}}
    assert backlog.add_due(ledger, 105.0, now=100.0, width=1.0, limit=3) == (3, NO_CHANGE)
    # once a bucket is due it is dropped, and there is room again
    refused, ledger = backlog.add_due(ledger, 105.0, now=102.0, width=1.0, limit=3)
    assert refused is None and ledger == {"due": {"103": 2, "105": 1}, "queues": {}}
    assert backlog.remove_due(ledger, 104.6, now=102.0, width=1.0) == {"due": {"103": 2, "105": 0}, "queues": {}}
    assert backlog.total(ledger, now=103.0) == 1


def test_backlog_queue_counts_keep_the_newest_revision():
    ledger = backlog.set_queue(None, "slot.r.a", 3, 10)
    assert ledger == {"due": {}, "queues": {"slot.r.a": [3, 10]}}
    assert backlog.set_queue(ledger, "slot.r.a", 5, 9) is NO_CHANGE  # older news
    ledger = backlog.set_queue(ledger, "slot.r.b", 2, 11)
    assert backlog.total(ledger, now=0.0) == 5 and backlog.total(ledger, now=0.0, without="slot.r.a") == 2
    assert backlog.set_queue(ledger, "slot.r.a", 0, 12) == {"due": {}, "queues": {"slot.r.b": [2, 11]}}
    assert backlog.set_queue(None, "slot.r.c", 0, 1) is NO_CHANGE


def test_backlog_buckets_are_a_64th_of_the_longest_wait_at_least_a_second():
    assert (backlog.step(10.0), backlog.step(640.0), backlog.step(6400.0)) == (1.0, 10.0, 100.0)


def test_the_pace_is_used_once_measured_a_few_times():
    slot = {"runs": [A, B], "pace": 0.2, "samples": concurrency.PACE_SAMPLES - 1, "head": 9.0}
    assert concurrency.queue_of(slot, now=10.0) == concurrency.Queue(["a", "b"], None, 1.0)
    slot["samples"] += 1
    assert concurrency.queue_of(slot, now=10.0).pace == 0.2
