"""The sub-application through the real edge: mounted only when enabled, refusals as the edge's JSON.

No NATS here: what needs run states is the integration test's (tests/integration/test_web_view.py).
"""

from __future__ import annotations

import base64

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.bus.connection import Bus
from router.config import settings as settings_mod
from router.edge import app as web_edge

AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()}


@pytest.fixture
async def client_for():
    clients = []

    async def make(**env: str) -> TestClient:
        settings = settings_mod.load(None, env={f"TRIGGER_ROUTER_{k}": v for k, v in env.items()})
        client = TestClient(TestServer(web_edge.make_app(settings, Bus(settings.nats, settings.bus), {})))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_off_by_default(client_for):
    client = await client_for()
    assert (await client.get("/ui/runs")).status == 404


async def test_refusals_and_headers(client_for):
    client = await client_for(WEB__ENABLED="true", WEB__USERS='[{"name": "ops", "password": "pw"}]')
    refused = await client.get("/ui/runs")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic ")
    assert (await refused.json())["error"] == "unauthorized"
    style = await client.get("/ui/static/web.css", headers=AUTH)
    assert style.status == 200 and style.content_type == "text/css"
    assert style.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'none'")
    assert style.headers["X-Content-Type-Options"] == "nosniff"
    for entry in ("/ui/", "/ui"):
        moved = await client.get(entry, headers=AUTH, allow_redirects=False)
        assert moved.status == 302 and moved.headers["Location"] == "/ui/runs", entry
    assert (await client.post("/ui/runs", headers=AUTH)).status == 405
    away = await client.get("/ui/runs", headers=AUTH)  # NATS never reached: 503 with Retry-After, as ingest
    assert away.status == 503 and "NATS" in (await away.json())["detail"]
    assert (await client.get("/ui/runs/not-a-run-id", headers=AUTH)).status == 404
    assert (await client.get("/ui/runs?limit=0", headers=AUTH)).status == 400
