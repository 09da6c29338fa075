"""The web view's aiohttp sub-application: GET-only pages under ``/ui/``, behind ``access``.

The edge mounts it (``app.add_subapp(MOUNT, make_app(...))``) when ``web.enabled``; the edge's error
middleware wraps it, so a refusal raised here (401, 400 for a bad filter, 404 for an unknown run,
503 while NATS cannot answer) gets the edge's JSON answer and status. Only GET (and HEAD) routes
exist: nothing here can change a run. Every page carries a Content-Security-Policy that allows
nothing but this origin and no script at all, so even an escaping mistake could not run code.
"""

from __future__ import annotations

import re
import time
from typing import Awaitable, Callable

from aiohttp import web

from router import errors
from router.bus.connection import Bus
from router.config.settings import Settings
from router.engine import queries
from router.model import outcomes
from router.web import access, history, pages, standings, timeline

__all__ = ["MOUNT", "SECURITY_HEADERS", "make_app", "mount"]

MOUNT = "/ui"
SETTINGS = web.AppKey("web_settings", Settings)
BUS = web.AppKey("web_bus", Bus)
ACCESS = web.AppKey("web_access", access.Access)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RUN_ID = re.compile(r"^[0-9a-f]{32}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[ACCESS].check(request.headers.get("Authorization"))
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def _js(request: web.Request):
    bus = request.app[BUS]
    if not bus.connected or bus.js is None:
        raise errors.BusUnavailable("NATS cannot be reached right now; reload the page in a moment")
    return bus.js


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{MOUNT}/runs")


async def runs_page(request: web.Request) -> web.Response:
    filters = history.Filters.parse(request.query)
    settings = request.app[SETTINGS]
    js = _js(request)
    states, total = await queries.recent_runs(js, settings, settings.web.max_runs)
    selected, admitted = filters.select(states)
    joins = [j for j in await queries.waiting_joins(js, settings) if not filters.rule or j.get("rule") == filters.rule]
    return _html(pages.render(
        "runs.html", root=MOUNT, page="runs", filters=filters, rows=[history.row(s) for s in selected],
        admitted=admitted, read=len(states), total=total, max_runs=settings.web.max_runs,
        rules=sorted({str(s.get("rule")) for s in states if s.get("rule")} | ({filters.rule} if filters.rule else set())),
        outcomes=history.OUTCOMES, joins=joins))


async def run_page(request: web.Request) -> web.Response:
    run_id = request.match_info["run_id"]
    if not RUN_ID.match(run_id):
        raise errors.NotFound("a run id is 32 lowercase hex digits")
    js = _js(request)
    state = await queries.get_run(js, request.app[SETTINGS], run_id)
    if state is None:
        raise errors.NotFound(f"no run {run_id} in the run-state bucket (it may have expired: bus.max_age)")
    trigger = await queries.trigger_event(js, state)
    event_text, cut = history.event_json(trigger) if trigger is not None else ("", 0)
    if trigger is None and str((state.get("event") or {}).get("type", "")).startswith("dev.cdevents."):
        chain = "unknown: the trigger, a CDEvent that may carry its own chainId, is no longer stored"
    else:
        chain = outcomes.chain_id(trigger, run_id)
    return _html(pages.render(
        "run.html", root=MOUNT, page="runs", run_id=run_id, state=state, steps=timeline.build(state, trigger),
        chain=chain, joined=sorted((state.get("joined") or {}).items()), event_text=event_text, event_cut=cut,
        event_limit=history.EVENT_SHOWN_BYTES))


async def rules_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    states, total = await queries.recent_runs(_js(request), settings, settings.web.max_runs)
    found, span = standings.summarize(states, time.time())
    return _html(pages.render("rules.html", root=MOUNT, page="rules", standings=found, span=span, read=len(states),
                              total=total, max_runs=settings.web.max_runs))


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=pages.STYLESHEET.read_bytes(), content_type="text/css", charset="utf-8")


def make_app(settings: Settings, bus: Bus) -> web.Application:
    app = web.Application(middlewares=[guarded])
    app[SETTINGS] = settings
    app[BUS] = bus
    app[ACCESS] = access.Access(settings.web)
    app.router.add_get("/", index)
    app.router.add_get("/runs", runs_page)
    app.router.add_get("/runs/{run_id}", run_page)
    app.router.add_get("/rules", rules_page)
    app.router.add_get("/static/web.css", stylesheet)
    return app


def mount(app: web.Application, settings: Settings, bus: Bus) -> None:
    """The pages under ``MOUNT`` of ``app`` (the edge); a bare ``/ui`` redirects like ``/ui/`` (it shows nothing)."""
    app.router.add_get(MOUNT, index)  # before the sub-application, which would answer 404 for it
    app.add_subapp(MOUNT, make_app(settings, bus))
