"""``rolloutCheck`` against real Deployments: digests as the kubelet (kwok) reports them."""

from __future__ import annotations

import pytest

from handlers.actions import rollout_check
from router import errors
from router.model import events
from router.plugins import actions
from tests.integration.k8s.conftest import apply_deployment, deployment

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


@pytest.mark.parametrize("value", ["latest", ""])
async def test_expected_digest_must_be_a_digest(kube_client, namespace, value):
    await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{EXPECTED}", 1))
    if value:
        with pytest.raises(errors.PermanentError, match="contains no sha256 digest"):
            await run(namespace, expectedDigest=value)
    else:  # empty: the rendered template had no digest; only rollout and restarts are checked
        assert (await run(namespace, expectedDigest=value)).outcome == "success"
