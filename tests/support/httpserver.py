"""A real aiohttp server on a free loopback port, for the services and receivers tests stand up.

Probed services, sinks, collectors and contract servers all start the same way; this is that way
once: ``async with serving(app) as url`` gives ``http://127.0.0.1:<port>`` and cleans up after.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
