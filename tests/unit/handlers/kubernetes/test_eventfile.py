"""The Job-as-function contract (``eventfile``): what a termination message reports, how the event
is mounted. Expected values written from docs/remote-functions.md."""

from __future__ import annotations

import json

import pytest

from handlers.kubernetes import eventfile
from router.model import events

CHECKS = [{"name": "checkout", "passed": True}]


@pytest.mark.parametrize("message,expected", [
    (None, {}),
    ("", {}),
    ("  \n", {}),
    (json.dumps({"checks": CHECKS, "reason": "ok"}), {"report": {"checks": CHECKS, "reason": "ok"}}),
    (json.dumps({"checks": CHECKS}), {"report": {"checks": CHECKS, "reason": ""}}),
    (json.dumps({"reason": "nothing to check"}), {"report": {"checks": [], "reason": "nothing to check"}}),
    ("all passed", {"terminationMessage": "all passed"}),
    (json.dumps({"checks": [{"name": "x"}]}), {"terminationMessage": '{"checks": [{"name": "x"}]}'}),
    (json.dumps({"checks": [{"name": "x", "passed": "yes"}]}),
     {"terminationMessage": '{"checks": [{"name": "x", "passed": "yes"}]}'}),
    (json.dumps({"checks": {"name": "x", "passed": True}}),
     {"terminationMessage": '{"checks": {"name": "x", "passed": true}}'}),
    (json.dumps({"reason": 3}), {"terminationMessage": '{"reason": 3}'}),
    (json.dumps({"status": "ok"}), {"terminationMessage": '{"status": "ok"}'}),
    (json.dumps([1, 2]), {"terminationMessage": "[1, 2]"}),
])
def test_termination_message_contract(message, expected):
    assert eventfile.report(message) == expected


def test_a_long_message_outside_the_contract_is_bounded():
    assert len(eventfile.report("x" * 10_000)["terminationMessage"]) == eventfile.MESSAGE_BYTES


def pod(name: str, *containers: tuple[str, str | None]) -> dict:
    return {"name": name, "containers": [{"name": c, "exitCode": 0, **eventfile.report(m)} for c, m in containers]}


def test_the_newest_reporting_pod_wins_and_reports_are_not_kept_twice():
    old = pod("p1", ("t", json.dumps({"checks": [{"name": "a", "passed": False}], "reason": "first try"})))
    new = pod("p2", ("t", json.dumps({"checks": [{"name": "a", "passed": True}], "reason": "retried"})),
              ("side", json.dumps({"checks": [{"name": "b", "passed": True, "container": "db"}]})),
              ("quiet", None))
    checks, reason = eventfile.merged([old, new])
    assert checks == [{"name": "a", "passed": True, "container": "t"}, {"name": "b", "passed": True, "container": "db"}]
    assert reason == "retried"
    assert [c.get("reportedChecks") for c in new["containers"]] == [1, 1, None]
    assert old["containers"][0]["reportedChecks"] == 1 and "report" not in old["containers"][0]


def test_no_report_no_checks():
    assert eventfile.merged([pod("p", ("t", "plain text"))]) == ([], "")


def job() -> dict:
    return {"metadata": {"name": "smoke-0123456789ab", "namespace": "web"}, "spec": {"template": {"spec": {
        "initContainers": [{"name": "init"}],
        "containers": [{"name": "t", "env": [{"name": "TRIGGER_ROUTER_RUN_ID", "value": "stale"}]}]}}}}


def test_every_container_gets_the_file_and_the_variables():
    built = job()
    eventfile.mount(built, run_id="r" * 32, event_id="e-1")
    pod_spec = built["spec"]["template"]["spec"]
    assert pod_spec["volumes"] == [{"name": "trigger-router-event", "configMap": {
        "name": "smoke-0123456789ab-event", "items": [{"key": "event.json", "path": "event.json"}]}}]
    for container in [*pod_spec["initContainers"], *pod_spec["containers"]]:
        assert container["volumeMounts"] == [{"name": "trigger-router-event", "mountPath": "/etc/trigger-router",
                                              "readOnly": True}]
        assert container["env"] == [{"name": "TRIGGER_ROUTER_RUN_ID", "value": "r" * 32},
                                    {"name": "TRIGGER_ROUTER_EVENT_ID", "value": "e-1"}]


def test_the_config_map_is_owned_by_the_job_and_holds_the_structured_event():
    event = events.make({"id": "e-1", "source": "/s", "type": "t"}, {"k": "v"})
    created = {**job(), "metadata": {**job()["metadata"], "uid": "u-1"}}
    made = eventfile.config_map(created, eventfile.document(event), {"trigger-router.dev/run-id": "r"})
    assert made["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job",
                                                    "name": "smoke-0123456789ab", "uid": "u-1"}]
    assert json.loads(made["data"]["event.json"]) == {"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t",
                                                      "datacontenttype": "application/json", "data": {"k": "v"}}


def test_an_event_no_config_map_can_hold_is_refused():
    with pytest.raises(ValueError, match="a ConfigMap holds at most"):
        eventfile.document(events.make({"id": "e", "source": "/s", "type": "t"}, {"k": "x" * 1_100_000}))
