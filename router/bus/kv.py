"""The only wrapper of JetStream key-value buckets: JSON documents with compare-and-set.

Run state, policy state and Kubernetes watch state all keep small JSON documents in KV buckets
that several router processes write at once. This module is the one place that knows how nats-py
reports the outcomes of doing that, by their typed errors (``KeyNotFoundError``,
``KeyDeletedError``, ``KeyWrongLastSequenceError``, ``NoKeysError``) and, where an older client
reports a conflict only as a plain API error, by the server's error codes, never by message text:

- absent or deleted is ``None``; a lost compare-and-set race is ``None`` / ``False`` (the caller
  reads again), never an exception;
- anything else NATS or JetStream raises (no connection, no answer in time, a refused write) is
  ``errors.BusUnavailable`` saying what could not be read or stored, so callers decide between
  nak-and-retry and 503 in one way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from router import errors
from router.bus import backoff

__all__ = ["Bucket", "Entry", "NO_CHANGE", "ensure_buckets", "missing_buckets", "needed_buckets", "open_bucket"]

log = logging.getLogger(__name__)

NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError)
# JSStreamWrongLastSequenceErrF and JSStreamWrongLastSequenceConstantErr: the expected revision lost.
_WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
_ABSENT = (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError)

NO_CHANGE = None
"""Returned by a :meth:`Bucket.mutate` change function: leave the entry as it is."""
Change = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Entry:
    value: Any
    """The decoded JSON document (``None`` for an empty value)."""
    revision: int


def _lost_race(exc: BaseException) -> bool:
    return isinstance(exc, nats.js.errors.KeyWrongLastSequenceError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.err_code in _WRONG_LAST_SEQUENCE)


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Bucket:
    """One bucket of JSON documents; ``what`` names its contents in ``BusUnavailable`` messages."""

    def __init__(self, kv: KeyValue, what: str) -> None:
        self.kv = kv
        self.what = what

    def _unavailable(self, exc: BaseException, verb: str) -> errors.BusUnavailable:
        return errors.BusUnavailable(f"cannot {verb} {self.what}: {exc.__class__.__name__}")

    async def get(self, key: str) -> Entry | None:
        """The entry, or ``None`` when the key is absent or deleted."""
        try:
            entry = await self.kv.get(key)
        except _ABSENT:
            return None
        except NATS_ERRORS as exc:
            raise self._unavailable(exc, "read") from exc
        return Entry(json.loads(entry.value) if entry.value else None, entry.revision)

    async def read(self, key: str) -> tuple[Any, int]:
        """The value and its revision; ``(None, 0)`` when absent or deleted."""
        entry = await self.get(key)
        return (entry.value, entry.revision) if entry else (None, 0)

    async def put(self, key: str, value: Any) -> int:
        """Write unconditionally (last writer wins); the new revision."""
        try:
            return await self.kv.put(key, _dump(value))
        except NATS_ERRORS as exc:
            raise self._unavailable(exc, "store") from exc

    async def create(self, key: str, value: Any) -> int | None:
        """Write only if the key has no value yet; the new revision, or ``None`` if it has one."""
        try:
            return await self.kv.create(key, _dump(value))
        except NATS_ERRORS as exc:
            if _lost_race(exc):
                return None
            raise self._unavailable(exc, "store") from exc

    async def update(self, key: str, value: Any, revision: int) -> int | None:
        """Write only if the entry is still at ``revision``; the new revision, or ``None`` if not."""
        try:
            return await self.kv.update(key, _dump(value), last=revision)
        except NATS_ERRORS as exc:
            if _lost_race(exc):
                return None
            raise self._unavailable(exc, "store") from exc

    async def delete(self, key: str, revision: int | None = None) -> bool:
        """Delete, only at ``revision`` when given; ``False`` if someone wrote in between."""
        try:
            await self.kv.delete(key, last=revision)
        except NATS_ERRORS as exc:
            if _lost_race(exc):
                return False
            raise self._unavailable(exc, "delete from") from exc
        return True

    async def keys(self) -> list[str]:
        """Every live key. Read with :meth:`scan`: nats-py's ``KeyValue.keys()`` races its own
        "initial values done" marker and can answer no keys (or NoKeysError) on a busy server."""
        return [key async for key, _ in self.scan(values=False)]

    async def sequences(self) -> tuple[int, int]:
        """(messages, last sequence) of the bucket's stream: about how many entries it holds (deletions
        not yet purged count) and where its newest write is."""
        try:
            info = await self.kv._js.stream_info(f"KV_{self.kv._name}")
        except NATS_ERRORS as exc:
            raise self._unavailable(exc, "list") from exc
        return info.state.messages, info.state.last_seq

    SCAN_PAGE = 1000

    async def scan(self, prefix: str | None = None, *, values: bool = True,
                   newest: int | None = None) -> AsyncIterator[tuple[str, Any]]:
        """Every live key under ``prefix.`` (every key without one) with its value, in pages of
        ``SCAN_PAGE``; ``values=False``: keys only (the value is None, and not sent).

        An ephemeral pull consumer on the bucket's stream, last value per key, no acks: unlike
        nats-py's ``KeyValue.watch``/``keys`` there is no "initial values done" marker to race
        with, the end is ``num_pending == 0``. Deleted and purged keys are skipped.

        ``newest``: only what the last ``newest`` messages of the stream hold, i.e. the keys written
        most recently (oldest of them first), so a page can read a bucket of a million runs in
        bounded time. Exact for buckets of history 1 (every bucket here); with more history a key
        may come more than once, its latest value last.
        """
        stream = f"KV_{self.kv._name}"
        subject = f"{self.kv._pre}{prefix}.>" if prefix else f"{self.kv._pre}>"
        where: dict[str, Any] = {"deliver_policy": api.DeliverPolicy.LAST_PER_SUBJECT}
        if newest is not None:
            _, last = await self.sequences()
            if last == 0 or newest <= 0:
                return
            where = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": max(1, last - newest + 1)}
        config = api.ConsumerConfig(**where, ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0,
                                    max_ack_pending=-1, headers_only=not values)
        try:
            subscription = await self.kv._js.pull_subscribe(subject, stream=stream, config=config)
        except NATS_ERRORS as exc:
            raise self._unavailable(exc, "list") from exc
        try:
            while True:
                try:
                    info = await subscription.consumer_info()
                    if info.num_pending == 0:
                        return
                    messages = await subscription.fetch(min(self.SCAN_PAGE, info.num_pending), timeout=5)
                except NATS_ERRORS as exc:
                    raise self._unavailable(exc, "list") from exc
                for message in messages:
                    headers = message.headers or {}
                    if headers.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers:
                        continue
                    key = message.subject[len(self.kv._pre):]
                    if not values:
                        yield key, None
                    elif message.data:
                        yield key, json.loads(message.data)
        finally:
            try:
                await subscription.unsubscribe()
            except NATS_ERRORS:
                pass  # the server drops the ephemeral consumer after inactive_threshold anyway

    WATCH_IDLE = 5.0

    async def watch(self) -> AsyncIterator[tuple[str, Any, int]]:
        """Every live key with its value and revision, then every change as it happens, for as long
        as the caller iterates: ``(key, value, revision)``, ``value`` ``None`` for a deletion.

        An ordered push consumer (last value per key first), which nats-py re-creates after a gap.
        ``BusUnavailable`` once the connection is closed for good: the caller starts again on the
        ``Bus``'s new client, and is told the whole state again.
        """
        stream, nc = f"KV_{self.kv._name}", self.kv._js._nc
        try:
            subscription = await self.kv._js.subscribe(f"{self.kv._pre}>", stream=stream, ordered_consumer=True,
                                                       deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT)
        except NATS_ERRORS as exc:
            raise self._unavailable(exc, "watch") from exc
        try:
            while True:
                try:
                    message = await subscription.next_msg(timeout=self.WATCH_IDLE)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    if nc.is_closed:
                        raise errors.BusUnavailable(f"cannot watch {self.what}: the connection was closed") from None
                    continue
                except nats.errors.Error as exc:
                    raise self._unavailable(exc, "watch") from exc
                headers = message.headers or {}
                deleted = headers.get("KV-Operation") in ("DEL", "PURGE") or not message.data
                yield (message.subject[len(self.kv._pre):], None if deleted else json.loads(message.data),
                       message.metadata.sequence.stream)
        finally:
            try:
                await subscription.unsubscribe()
            except NATS_ERRORS:
                pass

    RACE_ATTEMPTS = 200
    """Lost compare-and-set races before :meth:`mutate` gives up: about 100 s of backing off, far
    more than routers contending for one key need (each of them writes a key one at a time)."""
    RACE_BACKOFF = 0.01
    RACE_BACKOFF_CAP = 1.0

    async def mutate(self, key: str, change: Change, attempts: int = RACE_ATTEMPTS, *,
                     known: Entry | None = None) -> tuple[Any, Any]:
        """Apply ``change`` atomically; returns (value before, value after).

        ``change`` gets a copy of the current value (``None`` if absent) and returns the new one, or
        :data:`NO_CHANGE`. It runs again whenever another writer got in between, so it must not have
        side effects. Between lost races it waits (``backoff.delay``, full jitter from
        ``RACE_BACKOFF`` up to ``RACE_BACKOFF_CAP``), so writers of one hot key spread out instead of
        colliding again at once. Past ``attempts`` lost races: ``BusUnavailable`` (the caller
        retries later).

        ``known``: the entry as the caller last saw it (e.g. its own last write). The first attempt
        uses it instead of reading; a stale guess is not a lost race, and a decision not to change
        a guessed value is checked against a real read, so ``known`` saves a read and never changes
        an answer.
        """
        lost = 0
        while True:
            guessed = known is not None
            if known is not None:
                current, revision, known = known.value, known.revision, None
            else:
                current, revision = await self.read(key)
            new = await change(json.loads(json.dumps(current)) if current is not None else None)
            if new is NO_CHANGE:
                if guessed:
                    continue
                return current, current
            written = await (self.update(key, new, revision) if revision else self.create(key, new))
            if written is not None:
                return current, new
            if guessed:
                continue
            lost += 1
            if lost >= attempts:
                raise errors.BusUnavailable(f"{self.what}: key {key} is too contended; will retry")
            await asyncio.sleep(backoff.delay(lost, self.RACE_BACKOFF, self.RACE_BACKOFF_CAP))


async def open_bucket(js: JetStreamContext, name: str, *, description: str, what: str, ttl: float = 0,
                      replicas: int = 1) -> Bucket:
    """The bucket ``name``, created (history 1) if it does not exist yet.

    Remembered as needed by this process: the ``Bus`` re-creates it if the server loses it
    (:func:`ensure_buckets`) and readiness checks it (:func:`missing_buckets`).
    """
    config = api.KeyValueConfig(bucket=name, history=1, ttl=ttl or None, replicas=replicas, description=description)
    try:
        try:
            kv = await js.key_value(name)
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            kv = await js.create_key_value(config)
    except NATS_ERRORS as exc:
        raise errors.BusUnavailable(f"cannot open {what} (bucket {name}): {exc.__class__.__name__}") from exc
    _needed.setdefault(js, {})[name] = (config, what)
    return Bucket(kv, what)


# What each JetStream context (one per connection) opened; weak, so a closed connection is forgotten.
_needed: "weakref.WeakKeyDictionary[JetStreamContext, dict[str, tuple[api.KeyValueConfig, str]]]" = \
    weakref.WeakKeyDictionary()


def needed_buckets(js: JetStreamContext) -> list[str]:
    return sorted(_needed.get(js, {}))


async def _exists(js: JetStreamContext, name: str) -> bool:
    # A Bucket cannot tell: reading a key of a deleted bucket answers "no such key".
    try:
        await js.stream_info(f"KV_{name}")
    except nats.js.errors.NotFoundError:
        return False
    return True


async def missing_buckets(js: JetStreamContext) -> list[str]:
    """Needed buckets the server does not have; raises what NATS raises."""
    return [name for name in needed_buckets(js) if not await _exists(js, name)]


async def ensure_buckets(js: JetStreamContext) -> list[str]:
    """Re-create needed buckets that are gone (same configuration); the names re-created.

    Open ``Bucket`` objects keep working: they address the bucket by name.
    """
    created = []
    for name, (config, what) in list(_needed.get(js, {}).items()):
        if await _exists(js, name):
            continue
        await js.create_key_value(config)
        log.info("re-created KV bucket %s (%s)", name, what)
        created.append(name)
    return created
