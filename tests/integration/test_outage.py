"""JetStream goes away and comes back: no 2xx without storage, nothing lost or duplicated."""

from __future__ import annotations

import asyncio

from tests.integration.test_webhooks import post_github


async def wait_ready(edge, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        response = await edge.http.get(f"{edge.url}/readyz")
        if response.status == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the edge did not become ready again")


async def test_ingest_answers_503_while_nats_is_down_and_recovers(edge, nats_server):
    for delivery in ("before-1", "before-2"):
        assert (await post_github(edge, "push/payload.json", delivery)).status == 202

    nats_server.stop()
    refused = await post_github(edge, "push/payload.json", "during-1")
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert "JetStream" in (await refused.json())["detail"]
    assert (await edge.http.get(f"{edge.url}/readyz")).status == 503
    assert (await edge.http.get(f"{edge.url}/healthz")).status == 200

    nats_server.start()
    await wait_ready(edge)
    # The sender retries what was refused, and (as webhooks do) redelivers one that was accepted.
    for delivery in ("during-1", "before-2", "after-1"):
        assert (await post_github(edge, "push/payload.json", delivery)).status == 202

    assert [e.id for e in await edge.stored()] == ["before-1", "before-2", "during-1", "after-1"]
