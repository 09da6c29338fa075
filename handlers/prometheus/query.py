"""The Prometheus HTTP query API (``/api/v1/query``, ``/api/v1/query_range``), as a gate reads it.

Any Prometheus-compatible server (Thanos, Mimir, VictoriaMetrics) answers the same envelope:
``{"status": "success", "data": {"resultType": ..., "result": ...}}``. What can go wrong is split
the way a gate needs it: a query the server refuses (``bad_data``, HTTP 400/422) will never succeed
and ends the run (``PermanentError``); an unreachable or overloaded server (connection errors, 5xx,
a 503 while it replays its WAL) may answer at the next interval (``TemporaryError``), and the gate
records that measurement as inconclusive instead of retrying the whole window.

Every sample value is a float as Prometheus spells it (``"NaN"``, ``"+Inf"``): NaN is kept, and the
gate decides what it means, because silently dropping it would turn "0/0" into "no data" or worse
into a pass.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any, Mapping

import aiohttp

from router.plugins import errors

__all__ = ["Api", "Series"]


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    values: list[tuple[float, float]] = field(default_factory=list)
    """``(unix time, value)`` pairs: one for an instant query, one per step for a range query."""


def _points(raw: list[Any]) -> list[tuple[float, float]]:
    return [(float(at), float(value)) for at, value in raw]


def parse(data: Mapping[str, Any]) -> list[Series]:
    """The series of a ``data`` object of any result type the server may answer with."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector":
        return [Series(item.get("metric", {}), _points([item["value"]])) for item in result]
    if kind == "matrix":
        return [Series(item.get("metric", {}), _points(item["values"])) for item in result]
    if kind == "scalar":
        return [Series({}, _points([result]))]
    raise errors.PermanentError(f"the query answers a {kind!r}, not a number: a gate compares numbers")


class Api:
    def __init__(self, url: str, *, headers: Mapping[str, str], ssl_context: ssl.SSLContext | bool | None,
                 timeout: float) -> None:
        self.url = url.rstrip("/")
        self.headers = dict(headers)
        self.ssl = ssl_context
        self.timeout = timeout

    async def instant(self, http: aiohttp.ClientSession, promql: str, at: float) -> list[Series]:
        return await self._ask(http, "query", {"query": promql, "time": f"{at:.3f}"})

    async def range(self, http: aiohttp.ClientSession, promql: str, start: float, end: float,
                    step: float) -> list[Series]:
        return await self._ask(http, "query_range", {"query": promql, "start": f"{start:.3f}",
                                                     "end": f"{end:.3f}", "step": f"{step:g}"})

    async def _ask(self, http: aiohttp.ClientSession, endpoint: str, form: dict[str, str]) -> list[Series]:
        where = f"{self.url}/api/v1/{endpoint}"
        try:
            async with http.post(where, data=form, headers=self.headers, ssl=self.ssl,
                                 timeout=aiohttp.ClientTimeout(total=self.timeout)) as answer:
                status = answer.status
                try:
                    body = await answer.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise errors.TemporaryError(f"{where}: {exc.__class__.__name__}: {exc}".rstrip(": ")) from exc
        if not isinstance(body, dict):
            if status >= 500 or status == 429:
                raise errors.TemporaryError(f"{where}: HTTP {status}")
            raise errors.PermanentError(f"{where}: HTTP {status} without a Prometheus answer")
        if body.get("status") == "success":
            return parse(body.get("data") or {})
        detail = f"{where}: HTTP {status}: {body.get('errorType')}: {body.get('error')}"
        if status in (400, 422) or body.get("errorType") == "bad_data":
            raise errors.PermanentError(detail)
        if status in (401, 403):
            raise errors.PermanentError(detail)  # the credentials will not get better by waiting
        raise errors.TemporaryError(detail)
