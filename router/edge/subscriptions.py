"""``/subscriptions``: the CloudEvents Subscriptions API over HTTP, as ``subscriptions-openapi.yaml`` defines it.

| request | answer |
|---|---|
| ``POST /subscriptions`` | ``201`` the realized subscription, ``Location: /subscriptions/<id>`` |
| ``GET /subscriptions`` | ``200`` a JSON array of every subscription (``[]`` when there is none) |
| ``GET /subscriptions/{id}`` | ``200`` the subscription, ``404`` if unknown |
| ``PUT /subscriptions/{id}`` | ``200`` the updated subscription (body: the whole subscription, its ``id`` the path's), ``404`` if unknown |
| ``DELETE /subscriptions/{id}`` | ``200`` the deleted subscription (spec §3.2.5.5), ``404`` if unknown |
| ``OPTIONS`` on either | ``200`` with ``Allow`` |

Every request needs ``Authorization: Bearer <token>`` with one of ``subscriptions.tokens``
(constant-time, ``tokens.bearer``), checked before the body is read; with no token configured the
API is closed and every request gets 401. A 401 carries ``WWW-Authenticate: Bearer
realm="trigger-router /subscriptions"``. The API manages what is pushed to arbitrary URLs, so it is
never open, not even on loopback.

Refusals are the edge's JSON errors (``app.errors_as_json``): 400 naming the ``field`` for an invalid
subscription (``model``), 404, 409 past ``subscriptions.max_subscriptions``, 413 past
``subscriptions.max_body_bytes`` or ``subscriptions.max_filters``, 415 for a body that is not JSON,
503 while JetStream cannot answer. This module maps nothing itself; it only raises.
"""

from __future__ import annotations

import logging

from aiohttp import web

from router import errors
from router.bus.connection import Bus
from router.config.settings import Settings
from router.edge import protocol, tokens
from router.model import events
from router.subscriptions import delivery, model
from router.subscriptions.store import Store, Stored, new_id

__all__ = ["CHALLENGE", "add_routes"]

log = logging.getLogger(__name__)

CHALLENGE = 'Bearer realm="trigger-router /subscriptions"'
PATH = "/subscriptions"
SETTINGS = web.AppKey("subscriptions_settings", Settings)
BUS = web.AppKey("subscriptions_bus", Bus)
STORES = web.AppKey("subscriptions_stores", dict)
"""The open ``Store`` per JetStream context (a replaced NATS client gets a new one)."""


def authenticate(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    accepted = [(token.get_secret_value().encode(), True) for token in settings.subscriptions.tokens]
    if not accepted:
        raise errors.Unauthorized("the Subscriptions API is closed: subscriptions.tokens configures no token",
                                  challenge=CHALLENGE)
    authorization = request.headers.get("Authorization")
    if authorization is None:
        raise errors.Unauthorized(f"{PATH} needs 'Authorization: Bearer <token>'", field="Authorization",
                                  challenge=CHALLENGE)
    tokens.bearer(authorization, accepted, CHALLENGE)


async def store(request: web.Request) -> Store:
    bus = request.app[BUS]
    stores = request.app[STORES]
    if bus.js is None or bus.js not in stores:
        opened = await Store.open(bus, request.app[SETTINGS])
        stores.clear()
        stores[bus.js] = opened
    return stores[bus.js]


async def read_subscription(request: web.Request, subscription_id: str, *, update: bool) -> model.Subscription:
    settings = request.app[SETTINGS]
    media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if not events.is_json_media_type(media):
        raise errors.UnsupportedMediaType(f"a subscription is JSON: send Content-Type: application/json, "
                                          f"not {media[:64] or '(none)'!r}")
    body = await protocol.read_body(request, settings.http, settings.subscriptions.max_body_bytes,
                                    "subscriptions.max_body_bytes")
    subscription, _ = model.parse(body, subscription_id, update=update,
                                  max_filters=settings.subscriptions.max_filters,
                                  max_depth=settings.http.max_json_depth)
    return subscription


def answer(stored: Stored, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(stored.subscription.document(), status=status, headers=headers)


def _unknown(subscription_id: str) -> errors.NotFound:
    return errors.NotFound(f"no subscription with id {subscription_id[:64]!r}", field="id")


async def create(request: web.Request) -> web.Response:
    authenticate(request)
    subscription = await read_subscription(request, new_id(), update=False)
    subscriptions = await store(request)
    await subscriptions.check_room()
    bus, settings = request.app[BUS], request.app[SETTINGS]
    # Consumers first, at JetStream's "next message": its events start here, whatever the clocks say.
    await delivery.create_consumers(bus, settings, subscription.id)
    try:
        stored = await subscriptions.create(subscription)
    except errors.IngestError:
        await _quietly_delete(bus, settings, subscription.id)
        raise
    log.info("created subscription %s to %s", stored.subscription.id, stored.subscription.sink)
    return answer(stored, 201, {"Location": f"{PATH}/{stored.subscription.id}"})


async def list_all(request: web.Request) -> web.Response:
    authenticate(request)
    found = await (await store(request)).list()
    return web.json_response([stored.subscription.document() for stored in found])


async def get(request: web.Request) -> web.Response:
    authenticate(request)
    subscription_id = request.match_info["id"]
    stored = await (await store(request)).get(subscription_id)
    if stored is None:
        raise _unknown(subscription_id)
    return answer(stored)


async def update(request: web.Request) -> web.Response:
    authenticate(request)
    subscription_id = request.match_info["id"]
    subscriptions = await store(request)
    if await subscriptions.get(subscription_id) is None:  # 404 before a 400 for a body it cannot matter for
        raise _unknown(subscription_id)
    stored = await subscriptions.update(await read_subscription(request, subscription_id, update=True))
    if stored is None:
        raise _unknown(subscription_id)
    log.info("updated subscription %s", subscription_id)
    return answer(stored)


async def delete(request: web.Request) -> web.Response:
    authenticate(request)
    subscription_id = request.match_info["id"]
    stored = await (await store(request)).delete(subscription_id)
    if stored is None:
        raise _unknown(subscription_id)
    # The delivering processes delete the consumers too; doing it here as well means a delete takes
    # effect even where no process delivers.
    await _quietly_delete(request.app[BUS], request.app[SETTINGS], subscription_id)
    log.info("deleted subscription %s", subscription_id)
    return answer(stored)


async def _quietly_delete(bus: Bus, settings: Settings, subscription_id: str) -> None:
    """Delete the consumers; if NATS cannot answer now, the delivering processes delete them later."""
    try:
        await delivery.delete_consumers(bus, settings, subscription_id)
    except errors.BusUnavailable as exc:
        log.warning("the consumers of subscription %s are not deleted yet: %s", subscription_id, exc.detail)


def options(allow: str):
    async def handler(request: web.Request) -> web.Response:
        authenticate(request)
        return web.Response(status=200, headers={"Allow": allow})
    return handler


def add_routes(app: web.Application, settings: Settings, bus: Bus) -> None:
    app[SETTINGS] = settings
    app[BUS] = bus
    app[STORES] = {}
    app.router.add_post(PATH, create)
    app.router.add_get(PATH, list_all, allow_head=False)
    app.router.add_route("OPTIONS", PATH, options("GET,POST,OPTIONS"))
    one = f"{PATH}/{{id}}"
    app.router.add_get(one, get, allow_head=False)
    app.router.add_put(one, update)
    app.router.add_delete(one, delete)
    app.router.add_route("OPTIONS", one, options("GET,PUT,DELETE,OPTIONS"))
