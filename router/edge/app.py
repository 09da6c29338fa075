"""The HTTP edge: CloudEvents and webhook ingest, health and readiness.

This is the only module that turns errors into HTTP statuses. Every refusal is a JSON body
``{"error": <status text>, "detail": <what is wrong>, "field": <which field, if one>, "limit": <the
bound it broke, if one>}``; log lines name the delivery id and the reason, never a secret or the
payload. A 2xx is sent only after JetStream has acknowledged storage of every event of the request.

Requests are all or nothing: every bound (body size, JSON depth (``model.jsontext``), events per
batch, and ``router.bus.limits``: attribute and subject lengths, the server's ``max_payload``) is
checked and every event of a request encoded before the first is published, so a request that
can never be stored gets a 4xx with nothing stored, and 503 is kept for what a retry can fix
(JetStream not storing right now).
Requests aiohttp cannot even parse, and slow senders, are ``protocol``'s.
The run-history pages under ``/ui/`` (``web.enabled``) are ``router.web``'s sub-application.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from router import errors
from router.bus import publishing
from router.bus.connection import Bus
from router.config import logcontext
from router.config.settings import Settings
from router.engine import deadletters
from router.engine import supervisor as supervision
from router.edge import subscriptions as subscriptions_api
from router.edge import protocol, tokens
from router.model import events, jsontext, tracecontext
from router.model.bindings import http as http_binding
from router.telemetry import metrics
from router.plugins import sources as webhook_sources
from router.plugins.sources import Delivery, Rejected, WebhookSource
from router.web import views as web_view

__all__ = ["make_app", "BUS", "SETTINGS", "SOURCES", "SUPERVISOR"]

log = logging.getLogger(__name__)

BUS = web.AppKey("bus", Bus)
SETTINGS = web.AppKey("settings", Settings)
SOURCES = web.AppKey("sources", dict)
SUPERVISOR = web.AppKey("supervisor", supervision.Supervisor)
DELIVERY_ID = web.RequestKey("delivery_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, detail: str, field: str | None = None,
                   headers: dict[str, str] | None = None, limit: str | None = None) -> web.Response:
    return protocol.json_error(status, detail, field=field, limit=limit, headers=headers)


def _ingest_source(request: web.Request) -> str | None:
    """``events``, a known webhook source's name, ``unknown``; None for requests that are not ingest."""
    if request.path == "/events":
        return "events"
    if request.path.startswith("/webhooks/"):
        name = request.match_info.get("source", "")
        return name if name in request.app[SOURCES] else "unknown"
    return None


@web.middleware
async def counted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``trigger_router_ingest_requests_total`` by source and the status answered."""
    response = await handler(request)
    source = _ingest_source(request)
    if source is not None:
        metrics.ingest(source, response.status)
    return response


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.BusUnavailable as exc:
        log.warning("%s %s refused (503): %s", request.method, request.path, exc.detail)
        return error_response(503, exc.detail, headers={"Retry-After": str(exc.retry_after)})
    except errors.IngestError as exc:
        metrics.rejected(_ingest_source(request) or request.path, exc.__class__.__name__)
        delivery = request.get(DELIVERY_ID) or "-"
        log.info("%s %s delivery=%s refused (%d): %s", request.method, request.path, delivery,
                 exc.status, exc.detail)
        retry_after, challenge = getattr(exc, "retry_after", None), getattr(exc, "challenge", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        if challenge:
            headers["WWW-Authenticate"] = challenge
        response = error_response(exc.status, exc.detail, exc.field, headers=headers or None,
                                  limit=getattr(exc, "limit", None))
        if isinstance(exc, errors.RequestTimeout):
            response.force_close()  # the rest of a slow body is not waited for
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error; retry the request (a repeated event is dropped as a duplicate)")


async def read_body(request: web.Request) -> bytes:
    """The body within ``http.max_body_bytes`` and ``http.body_timeout`` (``protocol.read_body``)."""
    return await protocol.read_body(request, request.app[SETTINGS].http)


def encode(request: web.Request, batch: list[events.CloudEvent]) -> list[publishing.Outgoing]:
    """Every event of a request encoded and checked against every bound, before any is published."""
    bus, messages = request.app[BUS], []
    trace = tracecontext.of_request(request.headers)
    for index, event in enumerate(batch):
        try:
            messages.append(bus.encode(tracecontext.ensure(event, trace)))
        except errors.IngestError as exc:
            if len(batch) == 1:
                raise
            field = f"[{index}].{exc.field}" if exc.field else f"[{index}]"
            raise type(exc)(f"event {index}: {exc.detail}", field=field, limit=exc.limit) from exc
    return messages


async def publish(request: web.Request, batch: list[events.CloudEvent],
                  messages: list[publishing.Outgoing] | None = None) -> list[dict]:
    bus = request.app[BUS]
    messages = encode(request, batch) if messages is None else messages
    try:
        stored = await bus.send_all(messages)
    except errors.BusUnavailable as exc:
        exc.retry_after = request.app[SETTINGS].http.retry_after
        raise
    metrics.published_all(batch, stored)
    return [{"id": e.id, "source": e.source, "type": e.type, "duplicate": s.duplicate}
            for e, s in zip(batch, stored)]


def parse_events(request: web.Request, body: bytes) -> list[events.CloudEvent]:
    """``POST /events`` in any mode, with the bounds on the body that parsing needs first."""
    http = request.app[SETTINGS].http
    content_type = request.headers.get("Content-Type")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    binary = not media.startswith(http_binding.STRUCTURED_PREFIX)
    if not binary or events.is_json_media_type(media):
        jsontext.check_depth(body, http.max_json_depth, what="JSON", limit="http.max_json_depth")
    batch = http_binding.parse(content_type, request.headers.items(), body)
    if len(batch) > http.max_batch_events:
        raise errors.PayloadTooLarge(f"the batch has {len(batch)} events; at most {http.max_batch_events} are "
                                     "allowed (http.max_batch_events)", limit="http.max_batch_events")
    if binary and batch and batch[0].data and batch[0].is_json():
        batch[0].json()  # JSON data must be JSON: BadRequest naming 'data' otherwise
    return batch


async def post_events(request: web.Request) -> web.Response:
    grant = tokens.authenticate(request.app[SETTINGS], request.headers)  # 401 before the body is read
    body = await read_body(request)
    batch = parse_events(request, body)
    grant.admit(batch)  # 403 (or 401 for an anonymous sender) before anything is stored
    accepted = await publish(request, batch)
    if log.isEnabledFor(logging.INFO):
        log.info("POST /events stored %d event(s): %s", len(accepted), ", ".join(a["id"] for a in accepted))
    return web.json_response({"accepted": accepted}, status=202)


async def post_webhook(request: web.Request) -> web.Response:
    name = request.match_info["source"]
    source: WebhookSource | None = request.app[SOURCES].get(name)
    if source is None:
        # The name is not repeated: a sender that put its path token where the name goes would see it echoed.
        raise errors.NotFound(f"no such webhook source; known: {', '.join(sorted(request.app[SOURCES]))}")
    body = await read_body(request)
    delivery = Delivery(request.headers, body, request.match_info.get("token"), request.remote or "")
    request[DELIVERY_ID] = source.delivery_id(delivery) or "-"
    logcontext.bind(delivery=request[DELIVERY_ID], source=name,
                    trace_id=tracecontext.trace_id(request.headers.get(tracecontext.ATTRIBUTE)))
    source.authenticate(delivery)
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", "application/x-www-form-urlencoded") and not content_type.endswith("+json"):
        raise errors.UnsupportedMediaType(f"content type {content_type!r} is not JSON")
    if content_type == "application/x-www-form-urlencoded":
        raise errors.UnsupportedMediaType("form-encoded webhooks are not supported; set the webhook's "
                                          "content type to application/json")
    batch, refused = await webhook_sources.convert(source, delivery, request.app[SETTINGS].http.max_json_depth)
    messages = encode(request, batch)  # before dead-lettering: a refused delivery stores nothing
    rejected = await dead_letter(request, name, refused)
    if not batch:
        log.info("webhook %s delivery=%s accepted, nothing to publish", name, request[DELIVERY_ID])
        return web.json_response({"accepted": [], "detail": "accepted; nothing to publish", **rejected},
                                 status=200)
    accepted = await publish(request, batch, messages)
    if log.isEnabledFor(logging.INFO):  # the summary is built per request: only when it is shown
        log.info("webhook %s delivery=%s stored %s", name, request[DELIVERY_ID],
                 ", ".join(f"{a['type']}{' (duplicate)' if a['duplicate'] else ''}" for a in accepted))
    return web.json_response({"accepted": accepted, **rejected}, status=202)


async def dead_letter(request: web.Request, name: str, rejected: list[Rejected]) -> dict:
    """Store the items a source could not ingest on the dead-letter stream, before answering 2xx."""
    if not rejected:
        return {}
    bus, settings = request.app[BUS], request.app[SETTINGS]
    subject = deadletters.ingest_subject(settings.bus.deadletter_subject)
    messages = [bus.encode(deadletters.rejected_event(name, request[DELIVERY_ID], item), subject)
                for item in rejected]
    try:
        for message in messages:
            await bus.send(message)
    except errors.BusUnavailable as exc:
        exc.retry_after = settings.http.retry_after
        raise
    log.warning("webhook %s delivery=%s dead-lettered %d item(s): %s", name, request[DELIVERY_ID], len(rejected),
                "; ".join(r.reason for r in rejected))
    return {"rejected": [{"index": r.index, "reason": r.reason, "field": r.field} for r in rejected]}


async def healthz(request: web.Request) -> web.Response:
    """200 while the process can recover by itself; 503 (a liveness probe restarts it) when it cannot."""
    problem = request.app[BUS].unrecoverable()
    if problem:
        return web.json_response({"status": "failing", "detail": problem}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """503 naming every failing part and every missing bus piece; 200 when there is none.

    Cheap enough for frequent probes: the part states are in memory and the bus check is cached
    (``connection.READY_CACHE``)."""
    supervisor = request.app.get(SUPERVISOR)
    failing = supervisor.failing() if supervisor is not None else {}
    missing = await request.app[BUS].missing()
    if not failing and not missing:
        return web.json_response({"status": "ok"})
    problems = [f"{name} is failing ({reason})" for name, reason in failing.items()]
    problems += [f"{piece} is missing" for piece in missing]
    return web.json_response({"status": "unavailable", "detail": "; ".join(problems), "failing": failing,
                              "missing": missing}, status=503)


def make_app(settings: Settings, bus: Bus, sources: dict[str, WebhookSource],
             supervisor: supervision.Supervisor | None = None) -> web.Application:
    # aiohttp's own limit is a backstop only; read_body enforces the configured one with a JSON 413.
    app = web.Application(middlewares=[counted, errors_as_json],
                          client_max_size=settings.http.max_body_bytes + 1024 * 1024,
                          handler_args=protocol.handler_args(settings.http))
    app[SETTINGS] = settings
    app[BUS] = bus
    app[SOURCES] = sources
    if supervisor is not None:
        app[SUPERVISOR] = supervisor
    app.router.add_post("/events", post_events)
    app.router.add_post("/webhooks/{source}", post_webhook)
    app.router.add_post("/webhooks/{source}/{token}", post_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.metrics.enabled:
        app.router.add_get(settings.metrics.path, serve_metrics)
    if settings.web.enabled:  # read-only run history; its refusals go through errors_as_json too
        web_view.mount(app, settings, bus)
    subscriptions_api.add_routes(app, settings, bus)
    return app


async def serve_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of ``router.telemetry.metrics``."""
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})
