"""How the short-lived commands reach NATS: the configured URL, or the running embedded server's.

``events``, ``runs`` and ``outcomes`` are clients, not servers: they find the server that a local
``serve`` started through its endpoint file, connect with few reconnect attempts, and turn every
failure into one ``ConfigError`` line instead of a traceback.
"""

from __future__ import annotations

import asyncio

import nats
import nats.errors

from router import errors
from router.bus import connection, embedded
from router.config.settings import Settings


def nats_url(settings: Settings) -> str:
    """The URL for short-lived CLI clients: configured, or the running embedded server's."""
    url = settings.nats.url or embedded.read_endpoint(settings.embedded_data_dir())
    if not url:
        raise errors.ConfigError(
            "no NATS URL configured and no embedded server is running "
            f"(no {embedded.endpoint_file(settings.embedded_data_dir())}); start `trigger-router serve` "
            "or set nats.url", path="nats.url")
    return url


async def connect(settings: Settings):
    """A plain NATS connection (``nats.aio.client.Client``); the caller closes it."""
    url = nats_url(settings)
    options = connection.connect_options(settings.nats, url)
    options["max_reconnect_attempts"] = 3
    try:
        return await nats.connect(**options)
    except (OSError, asyncio.TimeoutError, nats.errors.Error) as exc:
        raise errors.ConfigError(f"cannot connect to NATS at {connection.shown(url)}: {exc}",
                                 path="nats.url") from exc


async def open_bus(settings: Settings, extra_streams=()) -> connection.Bus:
    """A started ``Bus`` (streams ensured) for commands that publish; ``ConfigError`` if unreachable."""
    bus = connection.Bus(settings.nats, settings.bus, list(extra_streams))
    await bus.start(nats_url(settings))
    try:
        await bus.wait_ready(settings.nats.connect_timeout * 2)
    except asyncio.TimeoutError as exc:
        await bus.close()
        raise errors.ConfigError("cannot reach NATS JetStream", path="nats.url") from exc
    return bus
