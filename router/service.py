"""``trigger-router serve``: assemble the bus, the embedded NATS server and the HTTP edge.

Start-up order matters: the HTTP edge listens immediately (``/healthz`` answers, ingest answers 503
with Retry-After) while NATS is being reached, so a slow NATS never turns into refused connections
at the load balancer. Shutdown is the reverse: stop accepting, drain the NATS connection (pending
acks complete), then stop the embedded server.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from router import embedded, errors, registry, web as web_edge
from router.bus import Bus
from router.settings import Settings

log = logging.getLogger(__name__)


async def nats_url(settings: Settings) -> tuple[str, embedded.EmbeddedNats | None]:
    if settings.nats.url:
        return settings.nats.url, None
    config = settings.nats.embedded
    server = embedded.EmbeddedNats(settings.embedded_data_dir(), host=config.host, port=config.port,
                                   binary=config.binary)
    return await server.start(), server


def client_url(settings: Settings) -> str:
    """The URL for short-lived CLI clients: configured, or the running embedded server's."""
    url = settings.nats.url or embedded.read_endpoint(settings.embedded_data_dir())
    if not url:
        raise errors.ConfigError(
            "no NATS URL configured and no embedded server is running "
            f"(no {embedded.endpoint_file(settings.embedded_data_dir())}); start `trigger-router serve` "
            "or set nats.url", path="nats.url")
    return url


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plugins = registry.load_plugins()
    sources = {name: factory(settings) for name, factory in plugins.webhook_sources.items()}
    bus = Bus(settings.nats, settings.bus)
    server = None
    runner = web.AppRunner(web_edge.make_app(settings, bus, sources), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
        log.info("HTTP edge listening on %s", ", ".join(str(s.name) for s in runner.sites))
        url, server = await nats_url(settings)
        await bus.start(url)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        await bus.close()
        if server:
            await server.stop()
