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


DAY = 86400.0
LIMITS = [
    # (policy, bus.max_age) -> field refused (None: loads), words of the message
    ("a delay shorter than max_age loads", "{delay: 6d}", 7 * DAY, None, ""),
    ("a delay as long as max_age is refused", "{delay: 7d}", 7 * DAY, "spec.policy.delay",
     "a delay can keep a run waiting 7d, and bus.max_age (7d) deletes its message sooner"),
    ("a delay longer than max_age is refused", "{delay: 8d}", 7 * DAY, "spec.policy.delay", "shorten it"),
    ("a debounce longer than max_age is refused", "{debounce: 2h}", 3600.0, "spec.policy.debounce",
     "a debounce can keep a run waiting 2h"),
    ("a rate-limit backlog within max_age loads", "{rateLimit: {rate: 1, per: 10m}}", 7 * DAY, None, ""),
    ("a rate-limit backlog (maxWaiting runs) past max_age is refused", "{rateLimit: {rate: 1, per: 10m}}", DAY,
     "spec.policy.rateLimit", "a backlog of policy.maxWaiting (1000) runs at 1 per 10m can keep a run waiting 6.94d"),
    ("a smaller maxWaiting bounds the backlog", "{rateLimit: {rate: 1, per: 10m}, maxWaiting: 100}", DAY, None, ""),
    ("the hint says what to change", "{rateLimit: {rate: 1, per: 10m}}", DAY, "spec.policy.rateLimit",
     "lower policy.maxWaiting or raise the rate"),
    ("max_age 0 keeps messages for ever: nothing to outlive", "{delay: 30d}", 0.0, None, ""),
    ("no max_age given: not checked", "{delay: 30d}", None, None, ""),
    ("a queue has no timer to check", "{concurrency: {mode: queue}}", 60.0, None, ""),
]


@pytest.mark.parametrize("case,policy,max_age,field,message", LIMITS, ids=[c[0] for c in LIMITS])
def test_waits_that_outlive_the_bus_are_refused_at_load(tmp_path, case, policy, max_age, field, message):
    path = write(tmp_path, f"kind: TriggerRule\nmetadata: {{name: slow}}\nspec:\n  {ACTION}\n  policy: {policy}\n")
    if field is None:
        [rule] = rules.load([str(path)], catalog.load().actions, max_age)
        assert rule.name == "slow"
        return
    with pytest.raises(errors.RuleError) as caught:
        rules.load([str(path)], catalog.load().actions, max_age)
    assert (caught.value.file, caught.value.rule, caught.value.field) == (str(path), "slow", field)
    assert message in caught.value.message and "the run would be lost" in caught.value.message


def test_max_waiting_defaults_to_a_thousand_and_must_be_positive(tmp_path):
    assert load(tmp_path, ACTION).policy.max_waiting == 1000
    with pytest.raises(errors.RuleError) as caught:
        load(tmp_path, f"{ACTION}\n  policy: {{maxWaiting: 0}}")
    assert caught.value.field == "spec.policy.maxWaiting" and "greater than or equal to 1" in str(caught.value)


def test_reload_and_rules_validate_check_against_max_age_too(tmp_path, capsys):
    from router.cli import rules as rule_commands
    from router.config.settings import Settings
    from router.rules.reload import RuleReloader

    path = str(write(tmp_path, f"kind: TriggerRule\nmetadata: {{name: slow}}\nspec:\n  {ACTION}\n  policy: {{delay: 2h}}\n"))
    assert len(RuleReloader([path], catalog.load().actions, lambda m: None, 1.0).load().rules) == 1
    with pytest.raises(errors.RuleError, match="spec.policy.delay"):
        RuleReloader([path], catalog.load().actions, lambda m: None, 1.0, 3600.0).load()
    assert rule_commands.validate([path], Settings(bus={"max_age": 3600.0})) == 2
    assert f"{path}:5:12: rule slow, field spec.policy.delay" in capsys.readouterr().err


@pytest.mark.parametrize("policy,per_rule", [
    ("{}", {"concurrency", "rate"}),
    ("{concurrency: {key: 'all', mode: queue}}", {"concurrency", "rate"}),
    ("{concurrency: {key: '{{ data.app }}', mode: queue}}", {"rate"}),
    ("{rateLimit: {rate: 1, key: '{{ data.cluster }}'}, debounce: 1s}", {"concurrency"}),
])
def test_keys_without_templates_are_one_key_for_the_whole_rule(tmp_path, policy, per_rule):
    assert load(tmp_path, f"{ACTION}\n  policy: {policy}").keys.per_rule == per_rule


def test_a_join_window_must_be_shorter_than_the_stream_keeps_its_events(tmp_path):
    path = str(write(tmp_path, f"kind: TriggerRule\nmetadata: {{name: join}}\nspec:\n  {ACTION}\n  {CORRELATE}"))
    assert len(rules.load([path], catalog.load().actions, max_age=3600.0)) == 1  # 30m < 1h
    with pytest.raises(errors.RuleError) as caught:
        rules.load([path], catalog.load().actions, max_age=1800.0)
    assert caught.value.field == "spec.correlate.within" and "bus.max_age (30m)" in str(caught.value)
