"""Where a new events consumer starts (``router.start``), counted in runs a user would see executed.

The events stream already holds events when a router with a durable name it has never used starts:
``new`` (the default) runs none of them, only what is stored from then on; ``all`` runs every one;
an RFC 3339 time runs those stored from that time on. A consumer that exists is left as it is,
whatever ``router.start`` says now.
"""

from __future__ import annotations

import time

import nats

from router.bus import connection
from router.config import settings as settings_mod
from router.model import events
from tests.integration.test_supervision import TYPE, Serve, eventually, lines, ready, rule_appending_to


async def publish_events(nats_url: str, count: int, prefix: str) -> None:
    """``count`` events stored in the events stream (created as ``serve`` would), before any router."""
    nc = await nats.connect(nats_url)
    try:
        bus = connection.Bus(settings_mod.NatsSettings(url=nats_url), settings_mod.BusSettings())
        bus.nc, bus.js = nc, nc.jetstream()
        await connection.ensure_streams(bus.js, bus.config)
        await bus.publish_all([events.make({"id": f"{prefix}-{i}", "source": "/test", "type": TYPE}, {"n": i})
                               for i in range(count)])
    finally:
        await nc.close()


async def settled(nats_url: str) -> bool:
    """Every stored event routed and every recorded run executed (nothing pending, nothing unacked)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for stream, durable in (("TR_EVENTS", "trigger-router"), ("TR_RUNS", "trigger-router-runs")):
            info = await js.consumer_info(stream, durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True
    finally:
        await nc.close()


async def runs_after_start(nats_server, tmp_path, port: int, start: str, name: str = "serve") -> tuple[list[str], str]:
    """Start a router with ``router.start: start``, ingest one event, wait until all is handled:
    the event ids whose runs were executed (in total, so far), and the router's log."""
    ran = tmp_path / "ran"
    serve = Serve(tmp_path, port, name, nats_url=nats_server.url, rules=rule_appending_to(tmp_path, ran),
                  ROUTER__START=start)
    fresh = f"fresh-{name}"
    try:
        await ready(serve)  # readiness includes the events consumer: it exists from here on
        assert (await serve.post(fresh)) == 202

        async def done():
            return fresh in lines(ran) and await settled(nats_server.url)
        await eventually(done, f"the run of {fresh} and nothing left to do", serve)
    finally:
        serve.stop()
    return sorted(lines(ran)), serve.text()


def after_the_clock_moved_past(moment: float) -> None:
    """The kernel reports a process start in 10 ms ticks: leave more than one tick between events
    stored "before" and the router process, so that before means before."""
    while time.time() < moment + 0.05:
        pass


async def test_new_runs_only_events_stored_after_the_router_started(nats_server, tmp_path, free_port):
    await publish_events(nats_server.url, 3, "old")
    after_the_clock_moved_past(time.time())
    ran, log = await runs_after_start(nats_server, tmp_path, free_port, "new")
    assert ran == ["fresh-serve"], log
    assert "created consumer trigger-router on stream TR_EVENTS starting at " in log
    assert "(router.start: new, when this process started)" in log

    # The consumer exists now: a restart that says `all` does not move it back to the oldest event.
    ran, log = await runs_after_start(nats_server, tmp_path, free_port, "all", name="again")
    assert ran == ["fresh-again", "fresh-serve"], log
    assert "created consumer" not in log.replace("created consumer trigger-router-runs", "")


async def test_all_runs_every_stored_event(nats_server, tmp_path, free_port):
    await publish_events(nats_server.url, 3, "old")
    ran, log = await runs_after_start(nats_server, tmp_path, free_port, "all")
    assert ran == ["fresh-serve", "old-0", "old-1", "old-2"], log
    assert "created consumer trigger-router on stream TR_EVENTS starting at the first stored message " \
           "(router.start: all)" in log


async def test_a_time_runs_the_events_stored_from_then_on(nats_server, tmp_path, free_port):
    await publish_events(nats_server.url, 2, "before")
    moment = time.time()  # both are acknowledged, so stored before this
    after_the_clock_moved_past(moment)
    await publish_events(nats_server.url, 2, "since")
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}Z"
    ran, log = await runs_after_start(nats_server, tmp_path, free_port, start)
    assert ran == ["fresh-serve", "since-0", "since-1"], log
    assert f"created consumer trigger-router on stream TR_EVENTS starting at {start[:23]}Z (router.start)" in log
