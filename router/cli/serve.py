"""``trigger-router serve``: the composition root, assembling bus, embedded NATS, edge and engine.

The one module of the CLI that builds the server; the other commands are clients (``client``).

Start-up order matters: the HTTP edge listens immediately (``/healthz`` answers, ingest answers 503
with Retry-After) while NATS is being reached, so a slow NATS never turns into refused connections
at the load balancer. Shutdown is the reverse: stop the parts, await the plug-ins' shutdown hooks
(their own connections), stop accepting, drain the NATS connection (pending acks complete), then
stop the embedded server.

Everything that runs for the life of the process is a supervised part (``engine.supervisor``):
``bus`` (connecting, and re-creating what the server lost), ``source/<name>`` for every background
source, and ``executor``, ``router`` and ``reloader`` for routing. One failing part is restarted
and shown in ``/readyz``; the others keep working. A configuration error in a part's first attempt
ends ``serve`` with exit status 2 and one line.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import threading
from typing import Any, Callable

from aiohttp import web

from router import errors
from router.bus import embedded, limits
from router.bus.connection import Bus
from router.config.settings import Settings
from router.edge import app as web_edge
from router.edge import protocol
from router.engine import backlogs, runs
from router.engine import supervisor as supervision
from router.engine.executor import Executor
from router.engine.reporting import ReportWorker
from router.engine.routing import EventRouter
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher
from router.rules.reload import RuleReloader
from router.rules.ruleset import RuleSet, Sink
from router.subscriptions.manager import Manager as SubscriptionManager
from router.telemetry import metrics, tracing

log = logging.getLogger(__name__)


async def nats_url(settings: Settings) -> tuple[str, embedded.EmbeddedNats | None]:
    if settings.nats.url:
        return settings.nats.url, None
    config = settings.nats.embedded
    server = embedded.EmbeddedNats(settings.embedded_data_dir(), host=config.host, port=config.port,
                                   binary=config.binary)
    return await server.start(), server


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop for ``event_loop`` (``auto``, ``uvloop``, ``asyncio``); None is asyncio's own."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise errors.ConfigError("event_loop is uvloop but uvloop is not installed "
                                     "(pip install 'trigger-router[fast]')", path="event_loop") from None
        return None
    return uvloop.new_event_loop


def run(settings: Settings) -> None:
    """``serve`` on the loop ``event_loop`` chooses."""
    factory = loop_factory(settings.event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(settings))


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` (SIGINT, SIGTERM); ``errors.ConfigError`` if a part cannot start."""
    stop = stop or asyncio.Event()
    shutdown = Shutdown(asyncio.get_running_loop(), stop, settings.shutdown_grace)
    shutdown.install()
    try:
        await _serve(settings, stop)
    finally:
        shutdown.uninstall()


async def _serve(settings: Settings, stop: asyncio.Event) -> None:
    plugins = catalog.load()
    plugins.configure(settings)  # also when serve runs in-process (tests), not through main
    sources = {name: factory(settings) for name, factory in plugins.webhook_sources.items()}
    # Invalid rules stop start-up with the file, rule and field: better than serving without them.
    matcher = Matcher(rules.load(settings.rules.paths, plugins.actions, settings.bus.max_age,
                                 settings.rules.allow_empty, plugins.reporters)) if settings.rules.paths else Matcher([])
    routing = settings.router.enabled
    bus = Bus(settings.nats, settings.bus, [runs.runs_stream_config(settings)] if routing else [])
    supervisor = supervision.Supervisor(stop)
    server = None
    runner = protocol.runner(web_edge.make_app(settings, bus, sources, supervisor), settings.http, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        try:
            await site.start()
        except OSError as exc:
            raise errors.ConfigError(f"cannot listen on {settings.http.host}:{settings.http.port}: "
                                     f"{exc.strerror or exc}", path="http.port") from exc
        loop = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
        log.info("HTTP edge listening on %s (event loop: %s)", ", ".join(str(s.name) for s in runner.sites), loop)
        if settings.web.enabled:
            log.info("run-history web view at /ui/ (%s)", "credentials required" if settings.web.has_credentials()
                     else "no credentials configured: open, on loopback only")
        url, server = await nats_url(settings)
        supervisor.add("bus", functools.partial(bus.run, url))
        supervisor.add("limits", functools.partial(check_limits, bus, settings))
        tracing.configure(settings.tracing)
        if settings.metrics.enabled:
            metrics.initialize(list(plugins.reporters))
            metrics.watch_gauges(lambda: bus.connected, lambda: bus.connected and not supervisor.failing())
            supervisor.add("backlogs", functools.partial(backlogs.poll, bus, settings))
        for name, run in plugins.background_sources.items():
            supervisor.add(f"source/{name}", functools.partial(run, settings, bus))
        if routing:
            Routing(bus, settings, plugins, matcher).supervise(supervisor)
        if settings.subscriptions.delivering():  # one part per subscription, started by this one
            supervisor.add("subscriptions", SubscriptionManager(bus, settings, supervisor).run)
        # Start-up made about 100,000 objects that live as long as the process (plug-ins, settings,
        # rules, models). A full collection of the cyclic GC walks them all: 70 ms, measured with
        # gc.callbacks under ingest load, a pause that lands in the p99 of bench/ingest.py. Collected
        # once here, then frozen out of the collector's way; what is made later (a reloaded rule set,
        # caches) is collected as usual (0.6 ms per full collection under the same load).
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("shutting down")
    finally:
        gc.unfreeze()  # serve run in-process (tests) leaves nothing uncollectable behind
        await supervisor.close()
        await plugins.shut_down()  # after the parts: nothing uses a plug-in's connections any more
        await asyncio.to_thread(tracing.shutdown)  # what is batched is sent
        await runner.cleanup()
        await bus.close()
        if server:
            await server.stop()
    if supervisor.fatal is not None:
        raise supervisor.fatal


class Shutdown:
    """SIGTERM and SIGINT end ``serve`` within ``shutdown_grace``, whatever the loop is doing.

    The handlers are plain ``signal`` handlers, which Python runs between bytecodes of the main
    thread even while the loop is busy, rather than loop callbacks that wait for the loop. The
    first signal asks the loop to stop and starts a timer thread; if ``serve`` has not returned
    when it fires (a NATS drain against a stalled server, a stuck plug-in), the process exits with
    status 1 and says so. A second signal exits at once. The embedded nats-server follows its
    parent (``PR_SET_PDEATHSIG``), so nothing is left behind.
    """

    EXIT_STATUS = 1

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event, grace: float) -> None:
        self.loop = loop
        self.stop = stop
        self.grace = grace
        self.timer: threading.Timer | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        self.previous = {sig: signal.signal(sig, self.received) for sig in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self) -> None:
        """``serve`` returned: no exit is pending any more, and the caller's handlers are back."""
        if self.timer is not None:
            self.timer.cancel()
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def received(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.timer is not None:
            self.exit(f"{name} again: exiting now")
        self.timer = threading.Timer(self.grace, self.exit, (f"shutdown took longer than shutdown_grace "
                                                             f"({self.grace:g} s): exiting now",))
        self.timer.daemon = True
        self.timer.start()
        self.loop.call_soon_threadsafe(self.stop.set)

    def exit(self, why: str) -> None:
        # From a signal handler or a timer thread: no logging locks, no loop; one line and out.
        os.write(2, f"trigger-router: {why}\n".encode())
        os._exit(self.EXIT_STATUS)


async def check_limits(bus: Bus, settings: Settings) -> None:
    """Once connected: the configured sizes must fit the server's ``max_payload`` (fatal if not)."""
    await bus.wait_ready()
    limits.check(settings.http.max_body_bytes, bus.nc.max_payload)


class Routing:
    """Event routing, run execution, rule reload and rule sources: parts sharing the rules in force."""

    def __init__(self, bus: Bus, settings: Settings, plugins: catalog.Catalog, matcher: Matcher) -> None:
        self.bus = bus
        self.settings = settings
        self.plugins = plugins
        self.matcher = matcher
        self.router: EventRouter | None = None
        self.ruleset = RuleSet(self.apply)
        self.ruleset.parts["files"] = list(matcher.rules)
        self.rule_sources = [source for source in plugins.rule_sources.values() if source.enabled(settings)]

    def supervise(self, supervisor: supervision.Supervisor) -> None:
        supervisor.add("executor", self.execute)
        supervisor.add("reporter", self.report)
        if self.settings.rules.paths or self.rule_sources:
            # Without rules nothing can ever match: consuming every event would only cost the
            # ingest path CPU (bench/ingest.py). Executors still serve `runs retry` and other routers.
            router = self.settings.router
            self.bus.expect_consumer(self.settings.bus.events_stream, router.durable, router.start)
            supervisor.add("router", self.route)
        if self.settings.rules.paths:
            supervisor.add("reloader", self.reload)
        for source in self.rule_sources:
            sink = Sink(self.ruleset, source.name, self.plugins.actions, self.settings.bus.max_age,
                        self.plugins.reporters)
            supervisor.add(f"rules/{source.name}", functools.partial(source.run, self.settings, self.bus, sink))

    def apply(self, new: Matcher) -> None:
        self.matcher = new
        if self.router is not None:
            self.router.matcher = new

    async def states(self) -> runs.RunStates:
        await self.bus.wait_ready()
        return await runs.RunStates.open(self.bus.js, self.settings)

    async def execute(self) -> None:
        await Executor(self.bus, self.settings, self.plugins, await self.states()).run()

    async def report(self) -> None:
        await ReportWorker(self.bus, self.settings, self.plugins).run()

    async def route(self) -> None:
        states = await self.states()  # first: rules applied while it waits must reach the router
        self.router = EventRouter(self.bus, self.settings, self.matcher, states)
        await self.router.run()

    async def reload(self) -> None:
        settings, plugins = self.settings, self.plugins
        await RuleReloader(settings.rules.paths, plugins.actions, lambda m: self.ruleset.update("files", m.rules),
                           settings.rules.reload_interval, settings.bus.max_age, settings.rules.allow_empty,
                           plugins.reporters).run()
