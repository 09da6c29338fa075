"""``cloudevent``: deliver the triggering event to a remote function and take its verdict.

Knative Services and Functions, OpenFaaS and cloud function URLs all accept a CloudEvent POSTed
in HTTP binary mode, so a verification written as a function needs no runner of its own: the
event goes out exactly as it is on the bus (``plugins.http_binding.to_binary``, the encoding the
``cloudevent`` reporter sends outcomes with), with the run's ``traceparent`` so the function's
spans join the run's trace. What the answer means (``replies``; ``docs/remote-functions.md``):

- 2xx: the reply CloudEvent's data decides the outcome; no reply event: ``success``;
- 408, 429, 5xx, a timeout, a refused connection: ``TemporaryError``, retried under
  ``policy.retry``, after the ``Retry-After`` the function asked for when it sent one;
- any other status (4xx, an unfollowed 3xx): ``failure``, with the status and a bounded excerpt.

Credentials come from files (``headersFrom``: a mounted Secret), read at every call so a rotated
token is used at once, and kept out of logs and outcomes: the outcome shows the URL without
user info or query, and any header value that the function echoes into its body is cut out of the
excerpt. A namespaced TriggerRule may set neither ``headersFrom`` (it would read the router's
files) nor ``publishReply`` (it would write to the router's event stream, where ClusterTriggerRules
match): ``cluster_only``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import Any, ClassVar, Mapping
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from pydantic import Field, field_validator

from handlers.actions import replies
from router import plugins
from router.plugins import Duration, actions, errors, ratelimits

EXCERPT_BYTES = 512
"""Bytes of a refusing answer's body kept in the reason."""
REPLY_LIMIT = 1024 * 1024
"""Longest reply body read; a longer one is an error (it could not be published or stored anyway)."""
RETRIED = frozenset({408, 429})
"""Statuses below 500 that say "not now" rather than "no"."""
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class CloudEventFunction(actions.Params):
    cluster_only: ClassVar[Mapping[str, str]] = {
        "headersFrom": "it reads files on the router's host",
        "publishReply": "it writes to the router's events stream, where every rule matches",
    }

    url: str = Field(pattern=r"^https?://")
    """The function's endpoint; the event is POSTed to it in binary mode."""
    headers: dict[str, str] = {}
    """Extra request headers, as written (not for secrets: rules are readable)."""
    headers_from: dict[str, str] = Field({}, alias="headersFrom")
    """Header name -> file whose content (one trailing newline dropped) is the value, read at every
    call: ``{Authorization: /var/run/secrets/fn/authorization}``."""
    timeout: Duration = 30.0
    """One call's limit (also bounded by ``policy.timeout``); exceeding it is retried."""
    publish_reply: bool = Field(False, alias="publishReply")
    """Publish the reply event to the events stream, so rules can match it (functions chain)."""

    @field_validator("headers", "headers_from")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.match(name) or name.lower().startswith("ce-") or name.lower() == "content-type":
                raise ValueError(f"{name!r} is not a header this action may set (no ce-*, no Content-Type)")
        return value


def _secret_headers(headers_from: Mapping[str, str]) -> dict[str, str]:
    found = {}
    for name, path in headers_from.items():
        try:
            value = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise errors.PermanentError(f"headersFrom.{name}: cannot read {path}: {why}") from exc
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
        if not value or any(c in value for c in "\r\n\x00"):
            raise errors.PermanentError(f"headersFrom.{name}: {path} is empty or holds more than one line")
        found[name] = value
    return found


def shown(url: str) -> str:
    """``url`` as the outcome shows it: no user info, no query (function URLs carry keys there)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _excerpt(body: bytes, secrets: Mapping[str, str]) -> str:
    """The start of a body for a reason; secrets are cut out before it is cut short, so no prefix
    of one survives at the cut."""
    text = body.decode("utf-8", "replace")
    for value in secrets.values():
        text = text.replace(value, "[redacted]")
    cut = text.encode()[:EXCERPT_BYTES].decode("utf-8", "ignore")
    return cut.strip() + ("…" if len(cut) < len(text) else "")


def _retry_delay(status: int, headers: Mapping[str, str], body: str) -> float | None:
    asked = ratelimits.delay(status, headers, body)
    if asked is None:  # a 500 or 502 may say when to come back too
        asked = ratelimits.retry_after(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))
    return asked


async def _read(content: aiohttp.StreamReader) -> bytes:
    """The body up to one byte past ``REPLY_LIMIT`` (``read(n)`` returns what one chunk brought)."""
    chunks, size = [], 0
    async for chunk in content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > REPLY_LIMIT:
            break
    return b"".join(chunks)


async def _post(url: str, headers: dict[str, str], body: bytes, timeout: float, shared: Any = None
                ) -> tuple[int, dict[str, str], list[tuple[str, str]], str | None, bytes]:
    """(status, headers, header list, content type, body); ``TemporaryError`` when no answer came.
    On the executor's ``shared`` session when there is one: a function or sink called by every run
    keeps its connections (a new TCP connection per run was the largest cost of the action)."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            session = shared or await stack.enter_async_context(aiohttp.ClientSession())
            async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
                data = await _read(answer.content)
                return (answer.status, dict(answer.headers), list(answer.headers.items()),
                        answer.headers.get("Content-Type"), data)
    except aiohttp.ServerDisconnectedError as exc:
        if shared is None:
            raise errors.TemporaryError(f"{shown(url)}: the receiver closed the connection without an answer") from exc
        # A kept-alive connection the receiver closed just as it was reused: once more on a new one
        # (the event has a stable ce-id, so a receiver that did take it can drop the repeat).
        return await _post(url, headers, body, timeout)
    except asyncio.TimeoutError as exc:
        raise errors.TemporaryError(f"{shown(url)}: no answer within {timeout:g}s") from exc
    except aiohttp.ClientError as exc:  # some name the URL, query (a key) and all: shown without it
        what = str(exc).replace(url, shown(url))
        raise errors.TemporaryError(f"{shown(url)}: {exc.__class__.__name__}: {what}".rstrip(": ")) from exc


async def _publish(reply: plugins.CloudEvent, context: actions.Context) -> str:
    """Publish the reply; what the check says about it."""
    if reply.type == context.event.type:
        return "not published: it has the triggering event's type, and would trigger this rule again"
    if context.publish is None:
        raise errors.PermanentError("publishReply: this router gives actions no events stream to publish to")
    try:
        await context.publish(replies.with_trace(reply, context.traceparent))
    except errors.BusUnavailable as exc:
        raise errors.TemporaryError(f"publishReply: {exc.detail}") from exc
    except errors.IngestError as exc:
        raise errors.PermanentError(f"publishReply: the reply cannot be published: {exc.detail}") from exc
    return "published"


@plugins.action("cloudevent", params=CloudEventFunction)
async def call(params: CloudEventFunction, context: actions.Context) -> actions.Result:
    secrets = _secret_headers(params.headers_from)
    binary, body = plugins.http_binding.to_binary(context.event)
    headers = {**params.headers, **secrets, **binary}
    if context.traceparent and not any(k.lower() == "traceparent" for k in headers):
        headers["traceparent"] = context.traceparent
    timeout = min(params.timeout, max(context.timeout - 0.5, 0.1))
    started = time.perf_counter()
    status, answer_headers, header_list, content_type, data = await _post(params.url, headers, body, timeout,
                                                                          context.session)
    check: dict[str, Any] = {"name": f"function {shown(params.url)}", "url": shown(params.url), "status": status,
                             "latencyMs": round((time.perf_counter() - started) * 1000, 1)}
    if status >= 500 or status in RETRIED:
        excerpt = _excerpt(data, secrets)
        raise errors.TemporaryError(f"{shown(params.url)}: HTTP {status}: {excerpt or '(no body)'}",
                                    delay=_retry_delay(status, answer_headers, excerpt))
    if not 200 <= status < 300:
        reason = f"{shown(params.url)} answered HTTP {status}: {_excerpt(data, secrets) or '(no body)'}"
        return actions.Result("failure", reason, [{**check, "passed": False}], severity="high")
    if len(data) > REPLY_LIMIT and replies.carries_event(content_type, header_list):
        raise errors.PermanentError(f"{shown(params.url)}: the reply event is longer than {REPLY_LIMIT} bytes")
    reply = replies.reply_event(content_type, header_list, data, run_id=context.run_id, rule=context.rule)
    if reply is None:
        return actions.Result("success", f"{shown(params.url)} took the event (HTTP {status}, no reply event)",
                              [{**check, "passed": True}])
    result = replies.result_of(reply)
    check.update(passed=result.outcome == "success", reply={"id": reply.id, "source": reply.source, "type": reply.type})
    if params.publish_reply:
        check["reply"]["publish"] = await _publish(reply, context)
    return actions.Result(result.outcome, result.reason, [check, *result.checks], result.severity)
