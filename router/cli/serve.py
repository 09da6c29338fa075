"""``trigger-router serve``: the composition root, assembling bus, embedded NATS, edge and engine.

The one module of the CLI that builds the server; the other commands are clients (``client``).

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

from router.bus import embedded
from router.bus.connection import Bus
from router.config.settings import Settings
from router.edge import app as web_edge
from router.engine import runs
from router.engine.executor import Executor
from router.engine.routing import EventRouter
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher
from router.rules.reload import RuleReloader

log = logging.getLogger(__name__)


async def nats_url(settings: Settings) -> tuple[str, embedded.EmbeddedNats | None]:
    if settings.nats.url:
        return settings.nats.url, None
    config = settings.nats.embedded
    server = embedded.EmbeddedNats(settings.embedded_data_dir(), host=config.host, port=config.port,
                                   binary=config.binary)
    return await server.start(), server


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plugins = catalog.load()
    sources = {name: factory(settings) for name, factory in plugins.webhook_sources.items()}
    # Invalid rules stop start-up with the file, rule and field: better than serving without them.
    matcher = Matcher(rules.load(settings.rules.paths, plugins.actions)) if settings.rules.paths else Matcher([])
    routing = settings.router.enabled
    bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)] if routing else [])
    server = None
    tasks: list[asyncio.Task] = []
    runner = web.AppRunner(web_edge.make_app(settings, bus, sources), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
        log.info("HTTP edge listening on %s", ", ".join(str(s.name) for s in runner.sites))
        url, server = await nats_url(settings)
        await bus.start(url)
        tasks += [asyncio.create_task(run(settings, bus), name=f"source-{name}")
                  for name, run in plugins.background_sources.items()]
        if routing:
            tasks.append(asyncio.create_task(_route(bus, settings, plugins, matcher, stop), name="routing"))
        await stop.wait()
        log.info("shutting down")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        await bus.close()
        if server:
            await server.stop()


async def _route(bus: Bus, settings: Settings, plugins: catalog.Catalog, matcher: Matcher,
                 stop: asyncio.Event) -> None:
    """Event routing, run execution and rule reload, once the bus is ready."""
    await bus.wait_ready()
    states = await runs.RunStates.open(bus.js, settings)
    router = EventRouter(bus, settings, matcher, states)
    executor = Executor(bus, settings, plugins, states)

    def apply(new: Matcher) -> None:
        router.matcher = new

    workers = [executor.run()]
    if settings.rules.paths:
        # Without rule files nothing can ever match: consuming every event would only cost the
        # ingest path CPU (bench/ingest.py). Executors still serve `runs retry` and other routers.
        workers.append(router.run())
        workers.append(RuleReloader(settings.rules.paths, plugins.actions, apply, settings.rules.reload_interval).run())
    try:
        await asyncio.gather(*workers)
    except Exception:
        log.exception("routing stopped")
        stop.set()
        raise
