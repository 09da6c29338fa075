"""A run's timeline, step by step, from run states written as the engine writes them."""

from __future__ import annotations

import pytest

from router.model import events
from router.web import timeline

T = 1_764_590_400.0  # 2025-12-01T12:00:00Z
TRIGGER = events.make({"id": "push-1", "source": "https://github.com/acme/web", "type": "com.github.push",
                       "time": "2025-12-01T11:59:58Z"}, {"after": "abc"})
FINISHED = {"runId": "r" * 32, "rule": "smoke", "action": "httpProbe", "state": "finished", "queuedAt": T,
            "startedAt": T + 1, "worker": "host:1:ab", "finishedAt": T + 3.5, "durationSeconds": 2.5,
            "attempts": 1, "outcome": "failure", "reason": "1 of 2 check(s) still failing", "environment": "staging",
            "event": {"id": "push-1", "type": "com.github.push", "source": "https://github.com/acme/web"},
            "eventRef": ["TR_EVENTS", 7],
            "checks": [{"name": "health", "passed": True, "status": 200},
                       {"name": "version", "passed": False, "error": "JSON field 'sha' is 'old', expected 'abc'"}]}


def kinds(steps):
    return [(s.kind, s.status) for s in steps]


def test_a_failed_run_in_order():
    steps = timeline.build(FINISHED, TRIGGER)
    assert kinds(steps) == [("event", "info"), ("decision", "info"), ("started", "info"), ("check", "ok"),
                            ("check", "bad"), ("finished", "bad")]
    event, decision, started, _, failed, finished = steps
    assert dict(event.fields)["id"] == "push-1" and event.at == "2025-12-01T11:59:58Z"
    assert decision.title == "queued (no run policy applied)" and decision.at == "2025-12-01T12:00:00Z"
    assert dict(started.fields)["worker"] == "host:1:ab"
    assert failed.title == "check: version" and failed.detail == "JSON field 'sha' is 'old', expected 'abc'"
    assert finished.detail == "1 of 2 check(s) still failing"
    assert dict(finished.fields) == {"outcome": "failure", "action attempts": "1", "duration": "2.500 s"}


@pytest.mark.parametrize("changes,step,expected", [
    ({"state": "queued", "startedAt": None, "checks": []}, "started", ("not started yet", "pending")),
    ({"state": "running", "checks": []}, "finished", ("not finished yet", "pending")),
    ({"startedAt": None, "checks": [], "decision": "superseded", "outcome": "cancel"}, "started",
     ("never started", "info")),
    ({"decision": "debounced"}, "decision", ("policy decision: debounced", "warn")),
    ({"outcome": "success"}, "finished", ("finished: success", "ok")),
    ({"outcome": "cancel"}, "finished", ("finished: cancel", "warn")),
    ({"outcome": "error"}, "finished", ("finished: error", "bad")),
])
def test_steps_say_where_a_run_stands(changes, step, expected):
    steps = {s.kind: s for s in timeline.build({**FINISHED, **changes}, TRIGGER)}
    assert (steps[step].title, steps[step].status) == expected


def test_a_trigger_no_longer_stored_is_named_from_the_state():
    event = timeline.build(FINISHED, None)[0]
    assert event.status == "warn" and "no longer stored" in event.detail
    assert dict(event.fields) == {"id": "push-1", "type": "com.github.push", "source": "https://github.com/acme/web"}
    without_ref = timeline.build({k: v for k, v in FINISHED.items() if k != "eventRef"}, None)[0]
    assert "without a reference" in without_ref.detail


@pytest.mark.parametrize("check,detail", [
    ({"name": "a", "passed": False, "error": "boom"}, "boom"),
    ({"name": "a", "passed": True, "detail": "checks cut"}, "checks cut"),
    ({"name": "a", "passed": False, "reason": "rollout stuck"}, "rollout stuck"),
    ({"name": "a", "passed": True}, ""),
])
def test_check_detail_uses_the_actions_words(check, detail):
    assert timeline.check_detail(check) == detail


def test_reports_follow_finished_with_each_reporters_attempts():
    reports = [{"commit": {"provider": "github", "repository": "acme/web", "sha": "abc"}, "why": "push after"},
               {"reporter": "githubCheckRun", "stage": "finished",
                "attempts": [{"stage": "queued", "attempt": 1, "at": T, "result": "ok"},
                             {"stage": "finished", "attempt": 1, "at": T + 4, "result": "ok"}]},
               {"reporter": "cloudevent", "stage": None, "error": "cannot render uri",
                "attempts": [{"stage": "finished", "attempt": 3, "at": T + 9, "result": "gave-up", "detail": "503"}]}]
    steps = timeline.build({**FINISHED, "reports": reports}, TRIGGER)[-3:]
    assert [(s.title, s.status) for s in steps] == [("reports are about github acme/web abc", "info"),
                                                   ("report: githubCheckRun", "ok"), ("report: cloudevent", "bad")]
    assert [a["result"] for a in steps[1].items] == ["ok", "ok"] and steps[2].detail == "cannot render uri"
    assert steps[2].items[0] == {"stage": "finished", "attempt": "3", "at": "2025-12-01T12:00:09Z",
                                 "result": "gave-up", "detail": "503"}
