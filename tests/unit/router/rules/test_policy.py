"""Run-policy and correlation syntax: what loads, what does not, and which rule gets which index."""

from __future__ import annotations

import pytest

from router import errors
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules
from router.rules import policy as spec
from router.rules.matching import Matcher
from tests.unit.router.rules.test_loading import write

ACTION = "action: {exec: {command: [x]}}"
CORRELATE = """correlate:
    key: "{{ data.digest }}"
    within: 30m
    require:
      - name: published
        filters: [{exact: {type: dev.cdevents.artifact.published.0.3.0}}]
        key: "{{ data.customData.digest }}"
      - name: deployed
        filters: [{exact: {type: io.k8s.deployment.rollout_completed}}]"""


def load(tmp_path, spec_text: str) -> rules.Rule:
    [rule] = rules.load([str(write(tmp_path, f"kind: TriggerRule\nmetadata: {{name: r}}\nspec:\n  {spec_text}\n"))], catalog.load().actions)
    return rule


@pytest.mark.parametrize("spec_text,field,message", [
    ("policy: {concurrency: {mode: sometimes}}", "spec.policy.concurrency.mode", "'allow', 'forbid', 'replace' or 'queue'"),
    ("policy: {concurrency: {key: '{{ data. }}', mode: replace}}", "spec.policy.concurrency.key", "invalid CEL"),
    ("policy: {debounce: later}", "spec.policy.debounce", "not a duration"),
    ("policy: {dedupe: {window: 10m}}", "spec.policy.dedupe.key", "Field required"),
    ("policy: {rateLimit: {rate: 0}}", "spec.policy.rateLimit.rate", "greater than or equal to 1"),
    ("correlate: {key: x, within: 1m, require: [{name: a, filters: [{exact: {type: t}}]}]}",
     "spec.correlate.require", "at least 2"),
    ("correlate: {key: x, within: 1m, require: [{name: a, filters: [{exact: {type: t}}]}, "
     "{name: a, filters: [{exact: {type: u}}]}]}", "spec.correlate.require", "unique"),
    ("correlate: {key: x, within: 1m, require: [{name: a, filters: [{exact: {type: t}}]}, "
     "{name: b, filters: [{regex: {type: u}}]}]}", "spec.correlate.require[1].filters[0].regex", "unknown filter"),
])
def test_policy_errors_name_the_field(tmp_path, spec_text, field, message):
    with pytest.raises(errors.RuleError) as caught:
        load(tmp_path, f"{ACTION}\n  {spec_text}")
    assert caught.value.field.startswith(field) and message in str(caught.value)


def test_policies_compile_their_key_templates(tmp_path):
    rule = load(tmp_path, f"{ACTION}\n  policy:\n    concurrency: {{key: '{{{{ data.app }}}}', mode: replace}}\n"
                          "    debounce: 30s\n    dedupe: {key: 'constant'}\n    rateLimit: {rate: 5, per: 1m}")
    event = events.make({"id": "1", "source": "/s", "type": "t"}, {"app": {"name": "shop"}})
    assert spec.render_key(rule.keys.concurrency, event) == '{"name": "shop"}'
    assert spec.render_key(rule.keys.dedupe, event) == "constant"
    assert spec.render_key(rule.keys.rate, event) == ""
    assert (rule.policy.debounce, rule.policy.dedupe.window, rule.policy.rate_limit.per) == (30.0, 600.0, 60.0)


def test_a_correlated_rule_matches_each_required_event_and_is_indexed_by_their_types(tmp_path):
    rule = load(tmp_path, f"{ACTION}\n  {CORRELATE}")
    matcher = Matcher([rule])
    for kind in ("dev.cdevents.artifact.published.0.3.0", "io.k8s.deployment.rollout_completed"):
        assert matcher.match(events.make({"id": "1", "source": "/s", "type": kind}, {})) == [rule]
    assert matcher.match(events.make({"id": "1", "source": "/s", "type": "other"}, {})) == []
    assert rule.filter.pinned()["type"] == {"dev.cdevents.artifact.published.0.3.0",
                                            "io.k8s.deployment.rollout_completed"}
    published, deployed = rule.correlation.require
    event = events.make({"id": "1", "source": "/s", "type": "t"}, {"digest": "d1", "customData": {"digest": "d2"}})
    assert (spec.render_key(published.key, event), spec.render_key(deployed.key, event)) == ("d2", "d1")


def test_templates_of_a_correlated_rule_reach_every_joined_event(tmp_path):
    rule = load(tmp_path, "action: {exec: {command: [echo, '{{ events.published.data.tag }}']}}\n  " + CORRELATE)
    trigger = events.make({"id": "2", "source": "/k8s", "type": "io.k8s.deployment.rollout_completed"}, {})
    joined = {"published": {"id": "1", "type": "x", "data": {"tag": "v1.2"}}}
    assert rule.render(trigger, {"events": joined})["command"] == ["echo", "v1.2"]
