"""Functions against the local control plane: ``ctx.rollout_check`` (rolloutCheck's own code) and the
example ``deploychecks.restarts:no_restarts`` on real Deployments, ReplicaSets and (kwok) pods."""

from __future__ import annotations

import asyncio
from pathlib import Path

from handlers.functions import loading
from router.model import events
from router.plugins import actions, attempts, catalog
from tests.integration.k8s.conftest import apply_deployment, deployment

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = "sha256:" + "aa" * 32
MOVED = "sha256:" + "bb" * 32


async def invoke(ref: str, params: dict, timeout: float = 60.0) -> actions.Result:
    loading.use_paths([ROOT / "tests" / "fixtures" / "functions", ROOT / "examples" / "functions"])
    action = catalog.load().actions["function"]
    model = action.params.model_validate({"ref": ref, "params": params}, context={"loading": True})
    context = actions.Context("r" * 32, "verify", events.make(
        {"id": "e", "source": "/tests", "type": "dev.example.deployed"}, {}), timeout)
    result, _ = await attempts.attempt(action.run, "function", model, context)
    return result


async def test_rollout_check_through_ctx_reports_like_the_action(kube_client, namespace):
    await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web:1.0@{EXPECTED}"))
    passed = await invoke("trfixtures:rollout", {"namespace": namespace, "name": "web", "digest": EXPECTED})
    assert passed.outcome == "success", passed.reason
    pods = [c for c in passed.checks if c["name"].startswith("pod ")]
    assert len(pods) == 2 and all(c["digest"] == EXPECTED and c["passed"] for c in pods)
    failed = await invoke("trfixtures:rollout", {"namespace": namespace, "name": "web", "digest": MOVED})
    assert failed.outcome == "failure" and failed.severity == "critical"
    assert f"expected {MOVED[:19]}… running {EXPECTED[:19]}… in pod web-" in failed.reason


async def new_pods(kube_client, namespace: str) -> list[dict]:
    async with asyncio.timeout(60):
        while True:
            listing = await kube_client.request("GET", f"/api/v1/namespaces/{namespace}/pods")
            running = [p for p in listing["items"] if p.get("status", {}).get("containerStatuses")]
            if len(running) == 2:
                return running
            await asyncio.sleep(0.2)


async def test_the_restarts_example_on_a_quiet_rollout_and_on_a_restarting_pod(kube_client, namespace):
    await apply_deployment(kube_client, namespace, deployment("web", f"registry.invalid/web@{EXPECTED}"))
    pods = await new_pods(kube_client, namespace)
    params = {"namespace": namespace, "deployment": "web", "minutes": 0.02, "interval": 0.2}
    quiet = await invoke("deploychecks.restarts:no_restarts", params)
    assert quiet.outcome == "success", quiet.reason
    assert quiet.reason.startswith("no restart in 2 pod(s) of web-")
    assert len(quiet.checks) == 2 and all(c["passed"] for c in quiet.checks)
    status = pods[0]["status"]
    status["containerStatuses"][0]["restartCount"] = 3
    await kube_client.request("PUT", f"/api/v1/namespaces/{namespace}/pods/{pods[0]['metadata']['name']}/status",
                              body={**pods[0], "status": status})
    restarted = await invoke("deploychecks.restarts:no_restarts", {**params, "minutes": 1})
    assert restarted.outcome == "failure", restarted.reason
    assert restarted.reason.startswith(f"{pods[0]['metadata']['name']}/app restarted 3 time(s) after the rollout of web-")
