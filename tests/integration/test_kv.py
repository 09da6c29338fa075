"""``router.bus.kv`` against a real nats-server: what each outcome of a KV call becomes.

Run state, policy state and watch state all rest on this mapping, so each branch is driven here
by the server itself (a real lost compare-and-set race, a real deleted key, a closed connection),
not by raising nats-py's exceptions by hand.
"""

from __future__ import annotations

import asyncio

import nats
import pytest

from router import errors
from router.bus import kv


@pytest.fixture
async def bucket(nats_server):
    nc = await nats.connect(nats_server.url)
    opened = await kv.open_bucket(nc.jetstream(), "TEST_KV", description="test", what="test state")
    yield opened
    if not nc.is_closed:
        await nc.close()


async def test_absent_and_present(bucket):
    assert await bucket.get("a") is None and await bucket.read("a") == (None, 0)
    revision = await bucket.put("a", {"n": 1})
    assert await bucket.get("a") == kv.Entry({"n": 1}, revision)
    assert await bucket.keys() == ["a"]


async def test_create_is_refused_when_the_key_has_a_value(bucket):
    assert await bucket.keys() == []
    first = await bucket.create("a", {"n": 1})
    assert first is not None
    assert await bucket.create("a", {"n": 2}) is None
    assert (await bucket.get("a")).value == {"n": 1}


async def test_create_after_delete_succeeds(bucket):
    await bucket.put("a", {"n": 1})
    assert await bucket.delete("a") is True
    assert await bucket.get("a") is None
    assert await bucket.create("a", {"n": 2}) is not None
    assert (await bucket.get("a")).value == {"n": 2}


async def test_update_and_delete_only_at_the_revision_read(bucket):
    revision = await bucket.put("a", {"n": 1})
    newer = await bucket.update("a", {"n": 2}, revision)
    assert newer is not None and newer > revision
    assert await bucket.update("a", {"n": 3}, revision) is None  # someone wrote in between
    assert await bucket.delete("a", revision) is False
    assert (await bucket.get("a")).value == {"n": 2}
    assert await bucket.delete("a", newer) is True and await bucket.get("a") is None


async def test_concurrent_mutations_lose_no_update(bucket):
    async def increment(current):
        return {"n": (current or {}).get("n", 0) + 1}

    await asyncio.gather(*(bucket.mutate("counter", increment) for _ in range(25)))
    assert (await bucket.get("counter")).value == {"n": 25}


async def test_no_change_writes_nothing(bucket):
    revision = await bucket.put("a", {"n": 1})

    async def unchanged(current):
        return kv.NO_CHANGE

    assert await bucket.mutate("a", unchanged) == ({"n": 1}, {"n": 1})
    assert (await bucket.get("a")).revision == revision


async def test_a_key_that_always_changes_under_us_is_too_contended(bucket):
    async def interfering(current):
        await bucket.put("hot", {"other": True})  # another writer gets in before every update
        return {"mine": True}

    with pytest.raises(errors.BusUnavailable, match="test state: key hot is too contended"):
        await bucket.mutate("hot", interfering, attempts=3)


async def test_a_closed_connection_is_bus_unavailable(nats_server):
    nc = await nats.connect(nats_server.url)
    bucket = await kv.open_bucket(nc.jetstream(), "TEST_KV", description="test", what="test state")
    await nc.close()
    with pytest.raises(errors.BusUnavailable, match="cannot read test state"):
        await bucket.get("a")
    with pytest.raises(errors.BusUnavailable, match="cannot store test state"):
        await bucket.put("a", {"n": 1})


async def test_open_bucket_opens_what_exists(nats_server, bucket):
    await bucket.put("a", {"n": 1})
    nc = await nats.connect(nats_server.url)
    try:
        again = await kv.open_bucket(nc.jetstream(), "TEST_KV", description="test", what="test state")
        assert (await again.get("a")).value == {"n": 1}
    finally:
        await nc.close()


async def test_newest_reads_only_the_most_recently_written_keys(bucket):
    """A history page reads a bounded slice: the keys written last, whatever their names."""
    for name in ("a", "b", "c", "d"):
        await bucket.put(name, {"n": name})
    await bucket.put("a", {"n": "a again"})  # rewritten: now the newest
    await bucket.delete("c")
    newest = [(key, value["n"]) async for key, value in bucket.scan(newest=3)]
    assert newest == [("d", "d"), ("a", "a again")]  # the third-newest message is c's deletion
    assert [key async for key, _ in bucket.scan(newest=100)] == ["b", "d", "a"]
    assert [key async for key, _ in bucket.scan(newest=0)] == []
    messages, last = await bucket.sequences()
    assert messages == 4 and last == 6  # a, b, d and c's deletion marker; six writes


async def test_watch_tells_the_state_then_every_change(bucket):
    """What the subscription manager relies on: current values first, then puts and deletes, each
    with its revision, and the deletion of a key written before the watch began."""
    kept = await bucket.put("kept", {"n": 1})
    await bucket.put("gone", {"n": 2})
    seen: list[tuple] = []
    told = asyncio.Event()

    async def watch():
        async for change in bucket.watch():
            seen.append(change)
            if len(seen) == 2:
                told.set()
            if len(seen) == 5:
                return

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(told.wait(), 10)  # the state as it was: both keys
    changed = await bucket.put("kept", {"n": 3})
    await bucket.delete("gone")
    added = await bucket.create("new", {"n": 4})
    await asyncio.wait_for(watching, 10)
    assert seen[0] == ("kept", {"n": 1}, kept) and seen[1][:2] == ("gone", {"n": 2})
    assert seen[2] == ("kept", {"n": 3}, changed)
    assert seen[3][:2] == ("gone", None)
    assert seen[4] == ("new", {"n": 4}, added)


async def test_watch_ends_with_bus_unavailable_once_the_connection_is_closed(bucket, monkeypatch):
    monkeypatch.setattr(kv.Bucket, "WATCH_IDLE", 0.2)
    await bucket.put("a", {"n": 1})
    changes = bucket.watch()
    assert (await asyncio.wait_for(changes.__anext__(), 10))[:2] == ("a", {"n": 1})
    await bucket.kv._js._nc.close()  # as the Bus's client is after an -ERR: replaced, never reopened
    with pytest.raises(errors.BusUnavailable):
        await asyncio.wait_for(changes.__anext__(), 10)
