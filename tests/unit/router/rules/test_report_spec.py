"""``spec.report``: checked at load like the action (file, rule, field), rendered per run on its own."""

from __future__ import annotations

import json

import pytest

from router import errors
from router.engine import reports
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules


def rule(report) -> dict:
    return {"kind": "TriggerRule", "metadata": {"name": "told"},
            "spec": {"action": {"exec": {"command": ["true"]}}, "report": report}}


def load(tmp_path, report):
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(rule(report)))
    plugins = catalog.load()
    return rules.load([str(path)], plugins.actions, reporters=plugins.reporters)


@pytest.mark.parametrize("report, field, words", [
    ([{"nosuch": {}}], "spec.report[0].nosuch", "unknown reporter 'nosuch' (known: cloudevent"),
    ([{"cloudevent": {"uri": "ftp://x"}}], "spec.report[0].cloudevent.uri", "should match pattern"),
    ([{"cloudevent": {"uri": "http://x", "retries": 3}}], "spec.report[0].cloudevent.retries", "unknown field"),
    ([{"cloudevent": {"uri": "http://x", "backoffDelay": "P1X"}}], "spec.report[0].cloudevent.backoffDelay",
     "ISO 8601"),
    ([{"cloudevent": {"uri": "http://x"}, "extra": {}}], "spec.report[0]", "one reporter per entry"),
    ([{}], "spec.report[0]", "one reporter per entry, found 0"),
    ([{"cloudevent": {"uri": "http://x"}}] * 9, "spec.report", "at most 8"),
])
def test_load_errors_name_file_rule_and_field(tmp_path, report, field, words):
    with pytest.raises(errors.RuleError) as raised:
        load(tmp_path, report)
    assert raised.value.file.endswith("rules.yaml") and raised.value.rule == "told"
    assert raised.value.field == field, str(raised.value)
    assert words in str(raised.value)


def test_without_the_catalog_no_reporter_is_known(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(rule([{"cloudevent": {"uri": "http://x"}}])))
    with pytest.raises(errors.RuleError, match=r"unknown reporter 'cloudevent' \(known: none\)"):
        rules.load([str(path)], catalog.load().actions)


def test_each_report_renders_on_its_own(tmp_path):
    (loaded,) = load(tmp_path, [{"cloudevent": {"uri": "http://sink.example/{{ data.team }}"}},
                                {"cloudevent": {"uri": "http://{{ data.missing.host }}/"}}])
    event = events.make({"id": "1", "source": "/s", "type": "t"}, {"team": "payments"})
    good, bad = loaded.render_reports(event)
    assert good == {"reporter": "cloudevent", "params": {
        "uri": "http://sink.example/payments", "on": ["finished"], "headers": {}, "retry": 3,
        "backoffPolicy": "exponential", "backoffDelay": 0.5, "timeout": 10.0}}
    assert bad["reporter"] == "cloudevent" and "params" not in bad
    assert bad["error"].startswith("spec.report[1].cloudevent: ")


@pytest.mark.parametrize("reached, stage, done", [
    (None, "queued", False), ("queued", "queued", True), ("queued", "started", False),
    ("finished", "started", True), ("started", "finished", False), ("finished", "finished", True),
])
def test_a_stage_older_than_one_reported_is_done(reached, stage, done):
    assert reports.done({"stage": reached}, stage) is done


def test_attempts_are_counted_per_stage_and_the_newest_kept():
    progress: dict = {"reporter": "x"}
    for _ in range(reports.MAX_ATTEMPTS_KEPT + 5):
        progress = reports.record(progress, "started", "retry", "HTTP 503", completed=False, retry_at=1.0)
    progress = reports.record(progress, "finished", "ok", completed=True, state={"id": 7})
    assert progress["tries"] == {"started": reports.MAX_ATTEMPTS_KEPT + 5, "finished": 1}
    assert len(progress["attempts"]) == reports.MAX_ATTEMPTS_KEPT
    assert progress["attempts"][-1]["result"] == "ok" and progress["attempts"][-2]["attempt"] == 25
    assert progress["stage"] == "finished" and progress["state"] == {"id": 7}
    assert progress["retryAt"] == {"started": 1.0}
