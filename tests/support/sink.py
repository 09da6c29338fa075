"""A subscription's sink as a user would run one: a real aiohttp server that records every request.

It answers every request with ``status`` (after a ``script`` of first answers), and can be stopped and started
again on the same port, which is what a sink that is down for a while looks like to the router:
connections refused, then accepted again. Counting what it received (``ids``: requests per
``ce-id``) is the effect a user notices; nothing here reads the router's own state.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def id(self) -> str:
        return self.headers.get("ce-id", "")


class Sink:
    def __init__(self, status: int = 200, script: list[tuple[int, dict[str, str]]] | None = None, *,
                 hang: bool = False, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        """Seconds each answer takes (a slow sink)."""
        self.hang = hang
        """Record each request, then never answer it (a sink that accepts connections and stalls)."""
        self.script = list(script or [])
        """Answers (status, headers) for the first requests, in order; then ``status``."""
        self.received: list[Received] = []
        self.port = 0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.method, request.path,
                                      {k.lower(): v for k, v in request.headers.items()}, body, time.time()))
        if self.hang:
            await asyncio.Event().wait()  # until the client gives up or the sink stops
        await asyncio.sleep(self.delay)
        status, headers = self.script.pop(0) if self.script else (self.status, {})
        return web.Response(status=status, headers=headers)

    async def start(self) -> "Sink":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)  # stalled requests: dropped
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Down: the port refuses connections (open ones are closed) until :meth:`start`."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def ids(self) -> Counter:
        return Counter(request.id for request in self.received)
