"""The pipelined publisher (``publishing.Acks``) against a real nats-server: every ack counted on
the stream itself, and every way JetStream can refuse or not answer mapped to the edge's errors."""

import asyncio
import os
import signal

import pytest

from router import errors
from router.bus import publishing
from router.bus.connection import Bus
from router.config import settings as settings_mod
from tests.support import routers


@pytest.fixture
async def bus(nats_server):
    settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": nats_server.url,
                                            "TRIGGER_ROUTER_NATS__PUBLISH_TIMEOUT": "1s"})
    bus = Bus(settings.nats, settings.bus)
    await bus.start(nats_server.url)
    await bus.wait_ready(15)
    yield bus
    await bus.close()


def message(subject: str, n: int, **headers: str) -> publishing.Outgoing:
    return publishing.encode_raw(subject, f'{{"n":{n}}}'.encode(), f"pipe-{subject}-{n}", headers, 1 << 20)


async def stored(bus: Bus, stream: str) -> int:
    return (await bus.js.stream_info(stream)).state.messages


async def test_a_batch_is_stored_once_and_acked_in_order(bus):
    batch = [message("tr.events.pipe", n) for n in range(500)]
    first = await bus.send_many(batch)
    assert [type(r) for r in first] == [publishing.Published] * 500
    assert len({r.seq for r in first}) == 500 and not any(r.duplicate for r in first)
    assert await stored(bus, "TR_EVENTS") == 500
    again = await bus.send_many(batch)  # the same ids: JetStream's duplicate window answers
    assert all(r.duplicate for r in again) and [r.seq for r in again] == [r.seq for r in first]
    assert await stored(bus, "TR_EVENTS") == 500
    assert bus._acks._waiting == {}


async def test_no_stream_for_the_subject_is_unavailable_not_a_hang(bus):
    with pytest.raises(errors.BusUnavailable, match="no responders"):
        await bus.send(message("nowhere.at.all", 1))
    results = await bus.send_many([message("tr.events.pipe", 1), message("nowhere.at.all", 2)])
    assert isinstance(results[0], publishing.Published) and isinstance(results[1], errors.BusUnavailable)
    assert await stored(bus, "TR_EVENTS") == 1


async def test_a_message_jetstream_refuses_is_a_bad_request(bus):
    refused = message("tr.events.pipe", 1, **{"Nats-Expected-Stream": "NOT_THIS_ONE"})
    with pytest.raises(errors.BadRequest, match="JetStream refused the message") as caught:
        await bus.send(refused)
    assert caught.value.limit == "jetstream"
    assert await stored(bus, "TR_EVENTS") == 0


async def test_no_answer_is_unavailable_within_the_timeout_and_a_late_ack_is_dropped(bus, nats_server):
    os.kill(nats_server.process.pid, signal.SIGSTOP)
    try:
        started = asyncio.get_running_loop().time()
        results = await bus.send_many([message("tr.events.pipe", n) for n in range(3)])
        waited = asyncio.get_running_loop().time() - started
    finally:
        os.kill(nats_server.process.pid, signal.SIGCONT)
    assert all(isinstance(r, errors.BusUnavailable) and "TimeoutError" in r.detail for r in results)
    assert waited < 5
    assert bus._acks._waiting == {}  # nothing kept for the acks that come after the timeout
    async def all_three_stored() -> bool:  # the server stored them once it ran again
        return await stored(bus, "TR_EVENTS") == 3
    await routers.until(all_three_stored, 5, "the three messages stored after SIGCONT")
    retried = await bus.send_many([message("tr.events.pipe", n) for n in range(3)])
    assert all(r.duplicate for r in retried)  # the sender's retry after its 503 is deduplicated
