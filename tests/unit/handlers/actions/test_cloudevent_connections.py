"""``cloudevent`` on the executor's shared session: connections counted at a real receiver."""

from __future__ import annotations

import aiohttp
from aiohttp import web

import pytest

from handlers.actions import cloudevent
from router import errors
from tests.support.httpserver import serving


class Receiver:
    """Counts TCP connections and answered requests; ``drop_second`` closes a connection, unanswered,
    when its second request arrives (what a receiver whose keep-alive ran out does to a reused one)."""

    def __init__(self, drop_second: bool = False) -> None:
        self.drop_second = drop_second
        self.requests_per_connection: dict[int, int] = {}
        self.answered = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = id(request.transport)
        self.requests_per_connection[key] = self.requests_per_connection.get(key, 0) + 1
        if self.drop_second and self.requests_per_connection[key] == 2:
            request.transport.close()
            return web.Response(status=500)  # never written: the connection is gone
        self.answered += 1
        return web.Response(status=202)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self.handle)
        return app


async def post(url: str, shared=None):
    return await cloudevent._post(url, {"ce-id": "1"}, b"{}", 5.0, shared)


async def test_runs_on_the_shared_session_reuse_one_connection():
    receiver = Receiver()
    async with serving(receiver.app()) as url, aiohttp.ClientSession() as shared:
        statuses = [(await post(url + "/", shared))[0] for _ in range(10)]
    assert statuses == [202] * 10 and receiver.answered == 10
    assert len(receiver.requests_per_connection) == 1


async def test_without_a_shared_session_each_call_connects_anew():
    receiver = Receiver()
    async with serving(receiver.app()) as url:
        for _ in range(3):
            await post(url + "/")
    assert len(receiver.requests_per_connection) == 3


async def test_a_reused_connection_closed_by_the_receiver_is_retried_once_on_a_new_one():
    receiver = Receiver(drop_second=True)
    async with serving(receiver.app()) as url, aiohttp.ClientSession() as shared:
        first = await post(url + "/", shared)
        second = await post(url + "/", shared)  # its connection is closed under it, then retried
    assert (first[0], second[0]) == (202, 202)
    assert receiver.answered == 2 and len(receiver.requests_per_connection) == 2


async def test_a_closed_connection_without_a_shared_session_is_a_temporary_error():
    calls = []

    async def always_drop(request: web.Request) -> web.StreamResponse:
        calls.append(1)
        request.transport.close()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/", always_drop)
    async with serving(app) as url:
        with pytest.raises(errors.TemporaryError, match="closed the connection without an answer"):
            await post(url + "/")
    assert len(calls) == 1  # not retried: there was no kept-alive connection to blame
