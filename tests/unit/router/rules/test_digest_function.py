"""``digest(value)`` in CEL: the actions' digest parser, callable from filters, templates and keys.

A correlation that joins "digest D was published" with "an environment now runs D" must join
however each event spells D; and a value that is no digest must fail like any other CEL error:
no match in a filter, a run ending ``error`` in a template or a policy key, an event left out of a
join (``Correlator.offer`` catches the ``PermanentError`` of ``render_key``).
"""

from __future__ import annotations

import logging

import pytest

from router import errors
from router.model import events
from router.rules import filters, templates
from router.rules import policy as spec
from tests.unit.router.rules.test_policy import load

HEX = "5e" * 32
DIGEST = f"sha256:{HEX}"


def event(type_: str = "dev.example.thing", **data) -> events.CloudEvent:
    return events.make({"id": f"e-{sorted(data.items())}", "source": "/tests", "type": type_}, data)


@pytest.mark.parametrize("value", [
    DIGEST, f"sha256%3A{HEX}", f"pkg:oci/web@sha256%3A{HEX}?repository_url=registry.example.com/acme/web",
    f"registry.example.com/acme/web:1.0@{DIGEST}",
])
def test_a_template_renders_the_canonical_digest(value):
    assert templates.Template("{{ digest(data.value) }}", "t").render(event(value=value)) == DIGEST
    assert templates.Template("{{ data.value.digest() }}", "t").render(event(value=value)) == DIGEST


@pytest.mark.parametrize("value,why", [
    ("", "empty"), ("latest", "a tag is not a digest"), ("registry.example.com/acme/web:1.0", "tag '1.0'"),
    (None, "null"), ("sha512:" + "ab" * 64, "unsupported digest algorithm"),
])
def test_a_template_of_a_value_that_is_no_digest_is_a_permanent_error_naming_it(value, why):
    with pytest.raises(errors.PermanentError) as failed:
        templates.Template("{{ digest(data.value) }}", "t").render(event(value=value))
    message = str(failed.value)
    assert f"digest(): {value!r} is not a sha256 digest: " in message and why in message, message
    assert "Check function arguments" not in message  # the binding's wrapping is taken off


def test_in_a_filter_a_value_that_is_no_digest_is_no_match_and_is_not_logged_per_event(caplog):
    caplog.set_level(logging.DEBUG)
    compiled = filters.compile({"cel": f'digest(data.value) == "{DIGEST}"'}, "spec.filters[0]")
    assert compiled.matches(event(value=f"pkg:oci/web@sha256%3A{HEX}"))
    for n in range(3):
        assert not compiled.matches(event(value=f"web:{n}"))
    assert "digest(): 'web:1' is not a sha256 digest" in compiled.why_not(event(value="web:1"))
    assert [r.name for r in caplog.records] == ["router.rules.filters.cel"]  # once per rule, none from `cel`


CORRELATE = """correlate:
    key: "{{ digest(data.images[0].digest) }}"
    within: 30m
    require:
      - name: published
        filters: [{exact: {type: dev.cdevents.artifact.published.0.3.0}}]
        key: "{{ digest(data.subject.id) }}"
      - name: deployed
        filters: [{exact: {type: io.k8s.deployment.rollout_completed}}]
  action: {exec: {command: [x]}}"""


def test_correlation_keys_join_however_each_event_spells_the_digest(tmp_path):
    rule = load(tmp_path, CORRELATE)
    published, deployed = rule.correlation.require
    cdevent = event("dev.cdevents.artifact.published.0.3.0",
                    subject={"id": f"pkg:oci/web@sha256%3A{HEX}?repository_url=registry.example.com/acme/web"})
    rollout = event("io.k8s.deployment.rollout_completed", images=[{"digest": DIGEST}])
    assert published.filter.matches(cdevent) and deployed.filter.matches(rollout)
    assert spec.render_key(published.key, cdevent) == spec.render_key(deployed.key, rollout) == DIGEST


def test_a_correlation_key_that_is_no_digest_keeps_the_event_out_of_the_join(tmp_path):
    [_, deployed] = load(tmp_path, CORRELATE).correlation.require
    with pytest.raises(errors.PermanentError, match="digest\\(\\): 'web:1.0' is not a sha256 digest"):
        spec.render_key(deployed.key, event("io.k8s.deployment.rollout_completed", images=[{"digest": "web:1.0"}]))


def test_a_policy_key_that_is_no_digest_is_a_permanent_error(tmp_path):
    rule = load(tmp_path, 'policy: {dedupe: {key: "{{ digest(data.value) }}", window: 10m}}\n'
                          '  action: {exec: {command: [x]}}')
    assert spec.render_key(rule.keys.dedupe, event(value=f"sha256%3A{HEX}")) == DIGEST
    with pytest.raises(errors.PermanentError, match="'' is not a sha256 digest: empty"):
        spec.render_key(rule.keys.dedupe, event(value=""))
