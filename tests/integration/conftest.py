"""The HTTP edge served for real (aiohttp on loopback) against a real nats-server."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from dataclasses import dataclass

import aiohttp
import nats
import pytest
from aiohttp import web

from router.bus.connection import Bus
from router.config import settings as settings_mod
from router.edge import app as web_edge
from router.edge import protocol
from router.model.bindings import nats as nats_binding
from router.plugins import catalog
from tests.support import prometheus as prometheus_server

GITHUB_SECRET = "it-is-a-secret"
GITHUB_OLD_SECRET = "the-previous-secret"
GITLAB_TOKEN = "gitlab-token"


def github_signature(body: bytes, secret: str = GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Edge:
    url: str
    bus: Bus
    nats_url: str
    settings: settings_mod.Settings
    http: aiohttp.ClientSession

    async def stored(self, stream: str = "TR_EVENTS"):
        """Every event in ``stream``, decoded, in order (read with a fresh ordered consumer)."""
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            found = []
            if info.state.messages == 0:
                return found
            sub = await js.subscribe(">", ordered_consumer=True, stream=stream)
            while len(found) < info.state.messages:
                msg = await sub.next_msg(timeout=5)
                found.append(nats_binding.from_message(msg.headers, msg.data))
            return found
        finally:
            await nc.close()


def make_settings(nats_url: str, **overrides) -> settings_mod.Settings:
    env = {
        "TRIGGER_ROUTER_NATS__URL": nats_url,
        "TRIGGER_ROUTER_NATS__PUBLISH_TIMEOUT": "2s",
        "TRIGGER_ROUTER_GITHUB__SECRETS": f'["{GITHUB_OLD_SECRET}", "{GITHUB_SECRET}"]',
        "TRIGGER_ROUTER_GITLAB__TOKENS": f'["{GITLAB_TOKEN}"]',
    }
    env.update({f"TRIGGER_ROUTER_{k}": v for k, v in overrides.items()})
    return settings_mod.load(None, env=env)


@contextlib.asynccontextmanager
async def serve_edge(nats_url: str, settings: settings_mod.Settings, *, hardened: bool = False):
    """The real HTTP edge on a free loopback port, connected to ``nats_url``.

    ``hardened``: served as ``serve`` serves it, by ``protocol.runner`` (JSON 400s, head timeout).
    """
    plugins = catalog.load()
    bus = Bus(settings.nats, settings.bus)
    await bus.start(nats_url)
    await bus.wait_ready(15)
    sources = {name: factory(settings) for name, factory in plugins.webhook_sources.items()}
    app = web_edge.make_app(settings, bus, sources)
    runner = protocol.runner(app, settings.http) if hardened else web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Edge(f"http://127.0.0.1:{runner.addresses[0][1]}", bus, nats_url, settings, http)
    finally:
        await runner.cleanup()
        await bus.close()


@pytest.fixture
async def edge(nats_server):
    async with serve_edge(nats_server.url, make_settings(nats_server.url, HTTP__MAX_BODY_BYTES="65536")) as served:
        yield served


@pytest.fixture
def prometheus(tmp_path):
    """``start(target, rule_files=())`` -> the base URL of a real Prometheus scraping ``target``."""
    yield from prometheus_server.launcher(tmp_path)
