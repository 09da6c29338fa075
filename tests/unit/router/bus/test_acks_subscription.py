"""``publishing.Acks`` when its reply subscription cannot be made: a 503, and a new try next time."""

import asyncio

import nats.errors
import pytest

from router import errors
from router.bus import publishing


class Client:
    """What ``Acks`` uses of a nats-py client; ``subscribe`` fails while ``closed``."""

    def __init__(self) -> None:
        self.closed, self.subscribes, self.published = True, 0, []

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject, cb):
        self.subscribes += 1
        if self.closed:
            raise nats.errors.ConnectionClosedError
        self.cb = cb

    async def publish(self, subject, payload, reply, headers):
        self.published.append(reply)


async def test_a_failed_subscription_is_unavailable_and_made_again_by_the_next_sender():
    client = Client()
    acks = publishing.Acks(client)
    message = publishing.encode_raw("tr.events.x", b"{}", "id-1", None, 1 << 20)
    with pytest.raises(errors.BusUnavailable, match="ConnectionClosedError"):
        await acks.send(message, 1.0)
    assert client.published == []  # nothing sent without a way to hear its ack
    client.closed = False
    results = await asyncio.gather(*(acks.send_all([message], 0.2) for _ in range(3)))
    assert client.subscribes == 2  # one more, shared by the three senders
    assert len(client.published) == 3
    assert all(isinstance(r[0], errors.BusUnavailable) for r in results)  # no server: nobody acks
