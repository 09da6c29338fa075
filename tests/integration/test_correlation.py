"""Correlation rules end to end: joins across events, replicas, restarts and expiry."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
import time

from router.cli import runs as run_commands
from router.engine.policy.store import PolicyStore
from router.model import artifacts, event_types, events
from tests.integration.test_policies import start, states_when
from tests.integration.test_router_processes import start_router, stop_router
from tests.integration.test_routing import stop
from tests.support import routers

ROLLOUT = "io.k8s.deployment.rollout_completed"
RULE = """
kind: TriggerRule
metadata: {{name: verify-rollout}}
spec:
  correlate:
    key: "{{{{ data.images[0].digest }}}}"       # the digest the rolled-out pods run
    within: {within}
    require:
      - name: published
        filters: [{{exact: {{type: {published}}}}}]
        key: "{{{{ data.customData.digest }}}}"
      - name: deployed
        filters: [{{exact: {{type: {rollout}}}}}]
  action:
    exec:
      command: ["/bin/echo", "{{{{ events.published.data.customData.repository }}}}",
                "{{{{ events.deployed.data.namespace }}}}",
                "{{{{ events.deployed.data.images[0].digest }}}}"]
"""


async def settle(js) -> None:
    """Until every event is routed and every recorded run executed: a wrong run would be there by then."""
    probe = routers.Probe(js)
    seen = await routers.wait_for(probe.settled, bool, 20)
    assert seen.ok, f"events or runs still pending after {seen.waited:.0f}s: {seen.value!r}"


def rule_yaml(within: str) -> str:
    return textwrap.dedent(RULE.format(within=within, published=event_types.ARTIFACT_PUBLISHED, rollout=ROLLOUT))


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def published(n: int, event_id: str) -> events.CloudEvent:
    trigger = events.make({"id": event_id, "source": "https://registry.example", "type": "io.quay.push"}, {})
    return artifacts.published(trigger, artifacts.Push("quay", "acme/shop", digest(n), "v1", None))


def rolled_out(n: int, event_id: str) -> events.CloudEvent:
    """Shaped like handlers/sources/kubernetes' rollout_completed event."""
    return events.make({"id": event_id, "source": "k8s://test/namespaces/prod/deployments/shop", "type": ROLLOUT},
                       {"cluster": "test", "kind": "Deployment", "namespace": "prod", "name": "shop",
                        "transition": "rollout_completed",
                        "images": [{"image": "quay.io/acme/shop:v1", "repository": "quay.io/acme/shop",
                                    "digest": digest(n)}]})


async def test_fires_once_per_digest_with_both_events_and_never_for_mismatches(edge, tmp_path, capsys):
    tasks = await start(edge, tmp_path, rule_yaml("30m"), replicas=2)
    try:
        await edge.bus.publish(published(1, "p1"))
        await edge.bus.publish(published(2, "p2"))
        await edge.bus.publish(rolled_out(3, "r3"))
        await edge.bus.publish(rolled_out(1, "r1"))
        await edge.bus.publish(rolled_out(1, "r1-again"))  # a second rollout of the same digest
        states = await states_when(edge, lambda s: any(x.get("state") == "finished" for x in s.values()))
        await settle(edge.bus.js)
        states = await states_when(edge, lambda s: True)
        await run_commands.list_runs(edge.settings, True, None)
    finally:
        await stop(tasks)
    [run] = states.values()
    assert run["outcome"] == "success" and run["joined"]["published"] == {
        "id": published(1, "p1").id, "type": event_types.ARTIFACT_PUBLISHED}
    # Two replicas route r1 and r1-again at once; whichever is recorded first completes the join.
    assert run["joined"]["deployed"]["id"] in ("r1", "r1-again")
    assert run["checks"][0]["stdoutTail"].strip() == f"acme/shop prod {digest(1)}"
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    waiting = {(j["key"], tuple(j["missing"])) for j in listed if j.get("state") == "waiting"}
    assert waiting == {(digest(2), ("deployed",)), (digest(3), ("published",))}


async def test_a_partial_join_expires_with_an_event_naming_what_never_arrived(edge, tmp_path):
    tasks = await start(edge, tmp_path, rule_yaml("1s"))
    try:
        await edge.bus.publish(published(7, "p7"))
        deadline = time.monotonic() + 15
        while not (expired := [e for e in await edge.stored() if e.type == event_types.CORRELATION_EXPIRED]):
            assert time.monotonic() < deadline, "no expiry event"
            await asyncio.sleep(0.2)
        await edge.bus.publish(rolled_out(7, "r7-late"))
        await settle(edge.bus.js)
        states = await states_when(edge, lambda s: True)
    finally:
        await stop(tasks)
    [event] = expired
    data = event.json()
    assert event.source == "/trigger-router/rules/verify-rollout" and event.subject == digest(7)
    assert data["missing"] == ["deployed"] and list(data["arrived"]) == ["published"]
    assert data["summary"] == "published but never deployed"
    assert states == {}, "a late half after expiry starts a new join instead of firing"


async def test_a_join_survives_a_killed_router(nats_server, tmp_path):
    from router.bus.connection import Bus
    from tests.integration.conftest import make_settings

    rules = tmp_path / "rules.yaml"
    rules.write_text(rule_yaml("30m"))
    settings = make_settings(nats_server.url)
    bus = Bus(settings.nats, settings.bus)
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    first = start_router(nats_server.url, str(rules), 0, tmp_path, "first")
    second = None
    try:
        await bus.publish(published(5, "p5"))
        deadline = time.monotonic() + 20
        while True:
            try:
                store = await PolicyStore.open(bus.js, settings)
                if await store.entries("join"):
                    break
            except Exception:  # the router creates the bucket once it is up
                pass
            assert time.monotonic() < deadline, "the first half never reached the join"
            await asyncio.sleep(0.2)
        stop_router(first, signal.SIGKILL)
        second = start_router(nats_server.url, str(rules), 0, tmp_path, "second")
        await bus.publish(rolled_out(5, "r5"))
        from router.engine import runs
        bucket = await runs.RunStates.open(bus.js, settings)
        deadline = time.monotonic() + 30
        while not [s for s in await bucket.all() if s.get("state") == "finished"]:
            assert time.monotonic() < deadline, "the join never fired after the restart"
            await asyncio.sleep(0.2)
        await settle(bus.js)
        states = await bucket.all()
    finally:
        stop_router(first, signal.SIGKILL)
        if second:
            stop_router(second)
        await bus.close()
    [run] = states
    assert run["outcome"] == "success" and set(run["joined"]) == {"published", "deployed"}
