"""The HTTP/1.1 connection under the edge: JSON answers to unparsable requests, quiet logs, read timeouts.

aiohttp answers a request it cannot parse (an oversized or duplicate header, a bad Content-Length,
chunked together with a length, a bad method or chunk size) itself, before any middleware runs: a
text/plain 400 whose text may quote the offending bytes (an ``Authorization`` header, a token), and
an ERROR traceback per request (8 MB of log for 20,000 fuzzed requests). It also has no timeout for
a request's head, so a sender that trickles header lines holds a connection as long as it likes
(slowloris). This module owns those three things:

- :class:`Protocol` answers such a request with the edge's JSON error body; the detail is a fixed
  description of the kind of error (:func:`describe`), never the bytes received;
- :class:`ServerLog` logs them at INFO without a traceback, one line per ``QUIET_EVERY`` seconds with
  the number left out, wherever aiohttp would have logged an exception for a client's error;
- a request's line and headers must be complete within ``http.header_timeout`` of its first byte
  (of the connection, for the first request), else the connection is closed.

Per-connection limits, documented in the README: request line and each header at most
``MAX_LINE_BYTES``, ``MAX_HEADERS`` headers, the body ``http.max_body_bytes`` within
``http.body_timeout`` (:func:`read_body`; then ``LINGER``), idle keep-alive
``http.keepalive_timeout``.
aiohttp puts no bound on the number of connections: that is the load balancer's (or the
Kubernetes ingress's) job, in front of every replica.

:func:`runner` builds the ``AppRunner`` that uses :class:`Protocol`; :func:`handler_args` are the
options :func:`router.edge.app.make_app` gives every runner, so even a plain ``web.AppRunner`` gets
the limits and the quiet log (but aiohttp's text/plain body and no head timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import http_exceptions, web

from router import errors
from router.config.settings import HttpSettings

__all__ = ["MAX_HEADERS", "MAX_LINE_BYTES", "Protocol", "ServerLog", "describe", "handler_args", "json_error",
           "read_body", "runner"]

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8190
"""The request line and each header line, in bytes (aiohttp's default, as most proxies)."""
MAX_HEADERS = 128
LINGER = 2.0
"""Seconds the rest of a refused request's body is still read (so the sender sees the answer, not a
reset) before the connection is closed; aiohttp's 10 s would let a slow sender hold it longer."""
QUIET_EVERY = 10.0
"""Seconds between two log lines about refused unparsable requests (the others are counted)."""

REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
           405: "method not allowed", 408: "request timeout", 409: "conflict", 413: "payload too large",
           415: "unsupported media type", 431: "request header fields too large", 500: "internal error",
           503: "service unavailable"}

# Substrings of the parser's messages (lower case) and what is said instead: the fixed text only.
_KINDS = (("content-length", "the Content-Length is invalid, repeated, or sent with Transfer-Encoding"),
          ("transfer-encoding", "the Transfer-Encoding is invalid or sent with a Content-Length"),
          ("chunk", "the chunked body is malformed (bad chunk size or framing)"),
          ("too many headers", f"more than {MAX_HEADERS} headers"),
          ("duplicate", "a header that may appear once is repeated"),
          ("header", "a header is malformed"),
          ("method", "the request method is not valid"),
          ("version", "the HTTP version is not valid"),
          ("url", "the request target is not valid"))


def json_error(status: int, detail: str, *, field: str | None = None, limit: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    """The edge's error body: ``{"error", "detail"[, "field"][, "limit"]}``."""
    body: dict[str, Any] = {"error": REASONS.get(status, "error"), "detail": detail}
    if field:
        body["field"] = field
    if limit:
        body["limit"] = limit
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


async def read_body(request: web.Request, http: HttpSettings, limit: int | None = None,
                    setting: str = "http.max_body_bytes") -> bytes:
    """The body, refusing with 413 as soon as it is known to exceed ``limit`` (default
    ``http.max_body_bytes``; ``setting`` names it) before reading it all, and with 408 when it has
    not arrived within ``http.body_timeout``."""
    limit = http.max_body_bytes if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"body of {request.content_length} bytes exceeds the limit of {limit} "
                                     f"({setting})", limit=setting)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(http.body_timeout):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise errors.PayloadTooLarge(f"body exceeds the limit of {limit} bytes ({setting})", limit=setting)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise errors.RequestTimeout(f"the body did not arrive within {http.body_timeout:g}s (http.body_timeout)",
                                    limit="http.body_timeout") from exc
    return b"".join(chunks)


def describe(exc: BaseException | None) -> tuple[str, str | None]:
    """(what is wrong, the limit it broke) for a parser error; never quotes what was received."""
    if isinstance(exc, http_exceptions.LineTooLong):
        return f"the request line or a header is longer than {MAX_LINE_BYTES} bytes", "max_line_bytes"
    if isinstance(exc, http_exceptions.BadHttpMethod):
        return "the request method is not valid", None
    if isinstance(exc, http_exceptions.ContentLengthError):
        return "the body is shorter than its Content-Length", None
    if isinstance(exc, http_exceptions.TransferEncodingError):
        return "the chunked body is malformed (bad chunk size or framing)", None
    text = str(getattr(exc, "message", "") or "").lower()
    for needle, said in _KINDS:
        if needle in text:
            return said, "max_headers" if needle == "too many headers" else None
    if isinstance(exc, http_exceptions.BadStatusLine):
        return "the request line is malformed", None
    return "the request is not valid HTTP/1.1", None


class _Quiet:
    """One log line per ``every`` seconds; the lines left out in between are counted in the next."""

    def __init__(self, every: float = QUIET_EVERY) -> None:
        self.every, self.left_out, self._said = every, 0, -every

    def say(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._said < self.every:
            self.left_out += 1
            return
        self._said, left_out, self.left_out = now, self.left_out, 0
        log.info(message + (f" ({left_out} more since the last such line)" if left_out else ""), *args)


_refusals = _Quiet()


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger: a client's unparsable request is one quiet INFO line, not a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, http_exceptions.HttpProcessingError):
            detail, _ = describe(exc_info)
            remote = args[0] if args else "-"
            _refusals.say("refused an unparsable request from %s (400): %s", remote, detail)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


class Protocol(web.RequestHandler):
    """aiohttp's request handler with JSON answers to unparsable requests and a head timeout."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._in_request:
            self._arm()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def head_arrived(self) -> None:
        """Called for every request whose line and headers were read (or could not be parsed)."""
        self._disarm()
        self._in_request = True

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._in_request = False

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, http_exceptions.HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        detail, limit = describe(exc)
        _refusals.say("refused an unparsable request from %s (%d): %s", request.remote, status, detail)
        if request.writer.output_size > 0:  # as aiohttp: an answer was begun, the connection is broken
            raise ConnectionError("a response was sent already; cannot send the error")
        response = json_error(status, detail, limit=limit)
        response.force_close()
        return response

    def _arm(self) -> None:
        if self._head_timer is None and self.header_timeout > 0:
            self._head_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._in_request:
            return
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        _refusals.say("closed a connection from %s: no complete request head within %.0fs (http.header_timeout)",
                      peer[0] if peer else "-", self.header_timeout)
        self.force_close()


class _Server(web.Server):
    """``web.Server`` making :class:`Protocol` connections, telling each when a request head arrived."""

    def __init__(self, server: web.Server, header_timeout: float) -> None:
        factory = server.request_factory

        def request_factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            if isinstance(protocol, Protocol):
                protocol.head_arrived()
            return factory(message, payload, protocol, writer, task)

        # aiohttp keeps the per-connection options in Server._kwargs; they are passed on unchanged.
        super().__init__(server.request_handler, request_factory=request_factory,
                         handler_cancellation=server.handler_cancellation, **server._kwargs)
        self.header_timeout = header_timeout

    def __call__(self) -> Protocol:
        return Protocol(self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs)


class _Runner(web.AppRunner):
    def __init__(self, app: web.Application, settings: HttpSettings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = settings.header_timeout

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self.header_timeout)


def runner(app: web.Application, settings: HttpSettings, **kwargs: Any) -> web.AppRunner:
    """An ``AppRunner`` for ``app`` whose connections are :class:`Protocol` (``kwargs``: AppRunner's)."""
    return _Runner(app, settings, **kwargs)


def handler_args(settings: HttpSettings) -> dict[str, Any]:
    """Per-connection options for ``web.Application(handler_args=...)``."""
    return {"logger": ServerLog(), "keepalive_timeout": settings.keepalive_timeout, "lingering_time": LINGER,
            "max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_LINE_BYTES, "max_headers": MAX_HEADERS}
