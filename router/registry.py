"""Registries through which plug-ins in ``handlers`` join the core.

The core never imports a concrete source or action: a plug-in module registers itself with a
decorator, and :func:`load_plugins` imports the plug-in packages once. Adding a webhook source is
one new file plus one import line in ``handlers/sources/__init__.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from pydantic import BaseModel

from router import actions
from router.deadletter import Rejected
from router.events import CloudEvent
from router.settings import Settings

PLUGIN_PACKAGES = ("handlers.sources", "handlers.actions")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP request to ``/webhooks/<source>[/<token>]``, body already size-checked."""

    headers: Mapping[str, str]
    body: bytes
    path_token: str | None = None
    remote: str = ""


class WebhookSource(Protocol):
    """Turns a sender's webhook into CloudEvents; raises ``errors.IngestError`` to refuse it."""

    def authenticate(self, delivery: Delivery) -> None: ...

    def delivery_id(self, delivery: Delivery) -> str: ...

    def normalize(self, delivery: Delivery) -> list[CloudEvent] | Awaitable[list[CloudEvent | Rejected]]:
        """The events to publish; an empty list accepts the delivery without publishing (ping).

        May be a coroutine (a source that must ask its sender's API first), and may return
        ``deadletter.Rejected`` for items of a batch that cannot be ingested: the edge stores those
        on the dead-letter stream instead of refusing the whole delivery.
        """
        ...


SourceFactory = Callable[[Settings], WebhookSource]
# A source that runs for the life of the process (a Kubernetes watch), given the settings and the
# bus (``router.bus.Bus``; not imported here to keep this module free of NATS).
BackgroundSource = Callable[[Settings, Any], Awaitable[None]]
ActionRun = Callable[[BaseModel, actions.Context], Awaitable[actions.Result]]


@dataclass(frozen=True)
class Action:
    name: str
    params: type[BaseModel]
    run: ActionRun


@dataclass
class Registry:
    webhook_sources: dict[str, SourceFactory] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    background_sources: dict[str, BackgroundSource] = field(default_factory=dict)

    def action(self, name: str, *, params: type[BaseModel]) -> Callable[[ActionRun], ActionRun]:
        def register(run: ActionRun) -> ActionRun:
            if name in self.actions:
                raise ValueError(f"action {name!r} is registered twice")
            self.actions[name] = Action(name, params, run)
            return run

        return register

    def background_source(self, name: str) -> Callable[[BackgroundSource], BackgroundSource]:
        def register(run: BackgroundSource) -> BackgroundSource:
            if name in self.background_sources:
                raise ValueError(f"background source {name!r} is registered twice")
            self.background_sources[name] = run
            return run

        return register

    def webhook_source(self, name: str) -> Callable[[SourceFactory], SourceFactory]:
        def register(factory: SourceFactory) -> SourceFactory:
            if name in self.webhook_sources:
                raise ValueError(f"webhook source {name!r} is registered twice")
            self.webhook_sources[name] = factory
            return factory

        return register


registry = Registry()


def load_plugins() -> Registry:
    for package in PLUGIN_PACKAGES:
        importlib.import_module(package)
    return registry
