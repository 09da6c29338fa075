"""``rolloutCheck`` against real Deployments: digests as the kubelet (kwok) reports them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from handlers.actions import rollout_check
from router import errors
from router.model import events
from router.plugins import actions
from tests.integration.k8s.conftest import apply_deployment, deployment
from tests.integration.test_routing import outcomes_for, start_routing, stop

EXPECTED = "sha256:" + "aa" * 32
MOVED = "sha256:" + "bb" * 32


def context(timeout: float = 60.0) -> actions.Context:
    return actions.Context("r" * 32, "verify", events.make(
        {"id": "e", "source": "/tests", "type": "dev.example.deployed"}, {}), timeout)


async def run(namespace: str, **params) -> actions.Result:
    model = rollout_check.RolloutCheck.model_validate({"namespace": namespace, "name": "web", **params})
    return await rollout_check.rollout_check(model, context())


async def test_matching_digest_passes(kube_client, namespace):
    await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web:1.0@{EXPECTED}"))
    result = await run(namespace, expectedDigest=f"pkg:oci/web@{EXPECTED}?repository_url=registry.invalid/web")
    assert result.outcome == "success", result.reason
    pods = [c for c in result.checks if c["name"].startswith("pod ")]
    assert len(pods) == 2 and all(c["digest"] == EXPECTED and c["passed"] for c in pods)


async def test_moved_tag_fails_naming_both_digests(kube_client, namespace):
    # The tag was pushed again after the build: the kubelet reports the digest it really pulled.
    manifest = deployment("web", "registry.invalid/web:1.0",
                          annotations={"kwok.trigger-router.dev/image-id": f"registry.invalid/web@{MOVED}"})
    await apply_deployment(kube_client, namespace, manifest)
    result = await run(namespace, expectedDigest=EXPECTED)
    assert result.outcome == "failure"
    assert f"expected {EXPECTED[:19]}… running {MOVED[:19]}… in pod web-" in result.reason
    failed = [c for c in result.checks if c.get("passed") is False]
    assert {c["digest"] for c in failed} == {MOVED} and {c["expectedDigest"] for c in failed} == {EXPECTED}


async def test_incomplete_rollout_fails_after_the_timeout(kube_client, namespace):
    # A pod that can never be scheduled (no node has this label) keeps the rollout incomplete.
    manifest = deployment("web", f"registry.invalid/web@{EXPECTED}", replicas=1)
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"nowhere": "true"}
    await apply_deployment(kube_client, namespace, manifest)
    result = await run(namespace, timeout="2s")
    assert result.outcome == "failure"
    assert "rollout not complete after 2s (1/1 updated, 0 ready" in result.reason


RULE = """
kind: TriggerRule
metadata: {{name: verify-{name}}}
spec:
  filters: [{{exact: {{type: dev.example.deployed}}}}]
  policy: {{timeout: 60s}}
  action:
    rolloutCheck:
      namespace: {namespace}
      name: web
      timeout: 30s
      expectedDigest: "{{{{ data.customData.digest }}}}"
"""


@pytest.mark.parametrize("name,value,outcome", [
    ("empty", "", "error"),  # before: an empty rendering meant "no digest check", and a moved tag passed
    ("tag", "registry.invalid/web:1.0", "error"),
    ("bare-tag", "latest", "error"),
    ("null", None, "error"),
    # Braces in the event's data pass rule-load validation as a template would; the action refuses them.
    ("braces", "{{ data.service }}", "error"),
    ("purl", f"pkg:oci/web@sha256%3A{EXPECTED.removeprefix('sha256:')}?repository_url=registry.invalid/web",
     "success"),
])
async def test_expected_digest_is_parsed_never_guessed(edge, tmp_path, kube_client, namespace, name, value, outcome):
    await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web:1.0@{EXPECTED}", 1))
    tasks = await start_routing(edge, tmp_path, RULE.format(name=name, namespace=namespace))
    try:
        trigger = events.make({"id": f"deployed-{name}", "source": "/tests", "type": "dev.example.deployed"},
                              {"service": "web", "customData": {"digest": value}})
        await edge.bus.publish(trigger)
        *_, finished = await outcomes_for(edge, 3, timeout=60)
    finally:
        await stop(tasks)
    content = finished["subject"]["content"]
    assert content["outcome"] == outcome, content
    if outcome == "error":
        assert f"{value!r} is not a sha256 digest" in content["reason"], content["reason"]
        assert finished["customData"]["checks"] == []  # refused before looking at the cluster
        return
    pods = [c for c in finished["customData"]["checks"] if c["name"].startswith("pod ")]
    assert [(c["digest"], c["expectedDigest"], c["passed"]) for c in pods] == [(EXPECTED, EXPECTED, True)]


async def test_the_action_refuses_what_is_no_digest_itself(kube_client, namespace):
    """A rendering that still holds braces skips load-time validation; the action reads it all the same."""
    with pytest.raises(errors.PermanentError, match="expectedDigest: '{{ x }}' is not a sha256 digest"):
        await run(namespace, expectedDigest="{{ x }}")


@pytest.mark.parametrize("value", ["latest", "", "sha256:" + "AA" * 32])
def test_a_literal_that_is_no_digest_is_refused(value):
    with pytest.raises(ValidationError, match=f"{value!r} is not a sha256 digest"):
        rollout_check.RolloutCheck.model_validate({"namespace": "n", "name": "web", "expectedDigest": value})
