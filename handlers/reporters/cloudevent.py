"""``cloudevent``: POST the run's outcome CloudEvent to a URL, with Knative-style delivery settings.

The event is exactly the ``testsuiterun.<stage>`` CDEvent on the outcomes stream, sent in HTTP
binary mode (``ce-*`` headers, the CDEvent JSON as the body), so a receiver deduplicates on
``ce-id`` across our retries. The delivery settings are Knative Eventing's ``delivery`` spec, so a
platform team can copy them from a Trigger or Subscription:

- ``retry``: retries after the first attempt; ``backoffPolicy`` ``exponential`` (``backoffDelay``
  × 2^n) or ``linear`` (× n); ``backoffDelay`` and ``timeout`` as ISO 8601 (``PT0.5S``) or ``2s``;
- what Knative retries is retried (408, 404, 409, 429, 5xx, timeouts, refused connections), and a
  ``Retry-After`` overrides the backoff; anything else is final at once;
- when the attempts are spent (``retry``, or ``reporting.max_attempts`` if lower), the event goes to
  ``deadLetterSink`` if set, with Knative's ``knativeerrordest``/``knativeerrorcode``/
  ``knativeerrordata`` extensions saying where it failed and how.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any, Literal

import aiohttp
from pydantic import Field, field_validator

from router import plugins
from router.plugins import Duration, errors, parse_duration, ratelimits, reporters

RETRIED = frozenset({404, 408, 409, 429})
"""Statuses below 500 that Knative's dispatcher retries; every 5xx is retried too."""
_ISO_8601 = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                       r"(?:(\d+(?:\.\d+)?)S)?)?$")
ERROR_DATA_LIMIT = 1024
"""Bytes of a failed answer's body kept in ``knativeerrordata`` (Knative keeps a similar prefix)."""


def seconds(value: Any) -> float:
    """An ISO 8601 duration (``PT0.2S``, Knative's spelling) or one of ours (``2s``, ``250ms``, 3)."""
    if isinstance(value, str) and value.startswith("P"):
        found = _ISO_8601.match(value)
        if not found or value in ("P", "PT"):
            raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT0.5S or PT1M")
        days, hours, minutes, secs = (float(part or 0) for part in found.groups())
        return days * 86400 + hours * 3600 + minutes * 60 + secs
    return parse_duration(value)


class CloudEventReport(plugins.Params):
    uri: str = Field(pattern=r"^https?://")
    """Where the outcome is POSTed."""
    on: list[Literal["queued", "started", "finished"]] = Field(["finished"], min_length=1)
    """Which stages' outcomes are sent."""
    headers: dict[str, str] = {}
    retry: int = Field(3, ge=0, le=100)
    backoff_policy: Literal["exponential", "linear"] = Field("exponential", alias="backoffPolicy")
    backoff_delay: Duration = Field(0.5, alias="backoffDelay")
    timeout: Duration = 10.0
    dead_letter_sink: str | None = Field(None, alias="deadLetterSink", pattern=r"^https?://")

    @field_validator("backoff_delay", "timeout", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        return seconds(value) if isinstance(value, str) else value


def delay(policy: str, base: float, retry: int) -> float:
    """Knative's wait before retry number ``retry`` (1 = the first retry)."""
    return base * (2 ** retry if policy == "exponential" else retry)


async def post(session: aiohttp.ClientSession, uri: str, outcome: plugins.CloudEvent, headers: dict[str, str],
               timeout: float, extensions: dict[str, str] | None = None) -> tuple[int | None, dict[str, str], str]:
    """One binary-mode POST: (status or None when no answer came, response headers, body or error)."""
    binary, data = plugins.http_binding.to_binary(outcome, extensions)
    try:
        async with session.post(uri, data=data, headers={**headers, **binary},
                                timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            body = (await answer.content.read(ERROR_DATA_LIMIT)).decode("utf-8", "replace")
            return answer.status, dict(answer.headers), body
    except asyncio.TimeoutError:
        return None, {}, f"no answer within {timeout:g}s"
    except aiohttp.ClientError as exc:
        return None, {}, f"{exc.__class__.__name__}: {exc}"


@plugins.reporter("cloudevent", params=CloudEventReport, reacts=lambda params: params.on)
async def report(params: CloudEventReport, context: reporters.Context, state: dict) -> dict | None:
    status, answer_headers, body = await post(context.session, params.uri, context.outcome, params.headers,
                                              params.timeout)
    if status is not None and 200 <= status < 300:
        return {"delivered": context.outcome.id, "status": status}
    what = f"HTTP {status}" if status is not None else body
    retryable = status is None or status >= 500 or status in RETRIED
    if retryable and context.attempt <= params.retry and not context.last_attempt:
        asked = ratelimits.delay(status or 0, answer_headers, body) if status else None
        raise errors.TemporaryError(f"{params.uri}: {what}",
                                    delay=asked if asked is not None else
                                    delay(params.backoff_policy, params.backoff_delay, context.attempt))
    if params.dead_letter_sink is None:
        raise errors.PermanentError(f"{params.uri}: {what} after {context.attempt} attempt(s); no deadLetterSink")
    extensions = {"knativeerrordest": params.uri}
    if status is not None:
        extensions["knativeerrorcode"] = str(status)
    if body:
        extensions["knativeerrordata"] = base64.b64encode(body.encode()[:ERROR_DATA_LIMIT]).decode()
    dead, _, dead_body = await post(context.session, params.dead_letter_sink, context.outcome, params.headers,
                                    params.timeout, extensions)
    if dead is None or not 200 <= dead < 300:
        raise errors.TemporaryError(f"{params.uri}: {what}; dead-letter sink {params.dead_letter_sink}: "
                                    f"{'HTTP ' + str(dead) if dead else dead_body}")
    return {"deadLettered": context.outcome.id, "status": status, "deadLetterStatus": dead}
