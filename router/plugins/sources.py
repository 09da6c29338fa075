"""What a source receives and gives back: a webhook delivery in, CloudEvents (or rejected items) out.

A webhook source is a class registered with ``@plugins.webhook_source(name)``; the edge builds one
per process from the settings and hands it every request to ``/webhooks/<name>[/<token>]``. A
background source (a Kubernetes watch) is a coroutine registered with
``@plugins.background_source(name)`` that runs for the life of the process.

:func:`convert` is how an authenticated delivery becomes what is stored: the edge's
``post_webhook`` calls it, and so does ``rules test --github/--gitlab/--registry``, so a dry run
sees exactly the events (derived CDEvents included) that the edge would store.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

from router.model import jsontext
from router.model.events import CloudEvent

if TYPE_CHECKING:  # types only: a source gets the running objects, it never builds them
    from router.bus.connection import Bus
    from router.config.settings import Settings

__all__ = ["BackgroundSource", "Delivery", "Rejected", "SourceFactory", "WebhookSource", "convert"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP request to ``/webhooks/<source>[/<token>]``, body already size-checked."""

    headers: Mapping[str, str]
    body: bytes
    path_token: str | None = None
    remote: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item of a multi-event delivery that cannot be ingested: dead-lettered with ``reason``.

    The edge stores it on the dead-letter stream (``router.engine.deadletters``) and still answers
    2xx, so a sender that retries whole batches is not stuck on one bad item.
    """

    reason: str
    item: Any
    field: str | None = None
    index: int | None = None
    """Position of the item in the delivery."""


class WebhookSource(Protocol):
    """Turns a sender's webhook into CloudEvents; raises ``errors.IngestError`` to refuse it."""

    def authenticate(self, delivery: Delivery) -> None: ...

    def delivery_id(self, delivery: Delivery) -> str: ...

    def normalize(self, delivery: Delivery) -> list[CloudEvent] | Awaitable[list[CloudEvent | Rejected]]:
        """The events to publish; an empty list accepts the delivery without publishing (ping).

        May be a coroutine (a source that must ask its sender's API first), and may return
        :class:`Rejected` for items of a batch that cannot be ingested: the edge stores those on the
        dead-letter stream instead of refusing the whole delivery.
        """
        ...


SourceFactory = Callable[["Settings"], WebhookSource]
BackgroundSource = Callable[["Settings", "Bus"], Awaitable[None]]
"""Runs for the life of the process with the settings and the bus (publish, ``wait_ready``, ``js``)."""


async def convert(source: WebhookSource, delivery: Delivery,
                  max_json_depth: int) -> tuple[list[CloudEvent], list[Rejected]]:
    """The events ``source`` makes of an (already authenticated) delivery, and the items it rejects.

    ``max_json_depth`` (``http.max_json_depth``) is checked before the source parses the body;
    ``errors.IngestError`` refuses the delivery."""
    jsontext.check_depth(delivery.body, max_json_depth, what="JSON", limit="http.max_json_depth")
    normalized = source.normalize(delivery)
    if inspect.isawaitable(normalized):  # sources that must ask someone first (a registry, for a digest)
        normalized = await normalized
    return ([item for item in normalized if not isinstance(item, Rejected)],
            [item for item in normalized if isinstance(item, Rejected)])
