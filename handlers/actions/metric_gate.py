"""``metricGate``: after a deploy, ask the observability stack whether the users' traffic is healthy.

A probe says the service answers; a gate says what its real traffic says, e.g. "error ratio of the
new pods < 1 %" for 5 minutes after ``rollout_completed``. The model is Argo Rollouts' analysis:
every ``interval`` over the ``window`` each query is measured once and the measurement is
*successful* (every sample satisfies the condition), *failed* (one does not) or *inconclusive* (no
data, NaN, or the server did not answer). The gate

- ends ``failure`` **the moment** a query has more failed measurements than ``failureLimit``
  (the early abort: an error spike does not wait for the window to end);
- ends ``error`` the moment a query has more inconclusive measurements than ``inconclusiveLimit``
  (a gate that cannot see is not a gate that passed);
- at the window's end, ``success`` if every query has at least ``successRequired`` successful
  measurements, else ``error`` (inconclusive).

Every measurement (query as rendered, value per series, phase, time) is in the outcome's checks.
A query with ``range`` is a range query over the last ``range`` (``step`` apart): every point must
satisfy the condition. Queries are ``{{ }}`` templates rendered from the triggering event like any
parameter (namespace, name, ``data.podTemplateHash``, a digest).
"""

from __future__ import annotations

import asyncio
import base64
import math
import ssl
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Mapping

import aiohttp
from pydantic import AfterValidator, Field, model_validator

from handlers.prometheus import conditions
from handlers.prometheus import query as promapi
from router import plugins
from router.plugins import Duration, actions, errors

Phase = Literal["successful", "failed", "inconclusive"]
MAX_MEASUREMENTS = 600
"""Measurements one gate may make (all queries together): each is a check of ~0.5 KB in the outcome."""


def _condition(text: str) -> str:
    conditions.parse(text)  # NotACondition is a ValueError: pydantic reports it at the field
    return text


class BasicAuth(actions.Params):
    username: str
    password_file: str = Field(alias="passwordFile")


class Query(actions.Params):
    name: str | None = None
    """How the measurements are named in the outcome (default: the query)."""
    query: str
    condition: Annotated[str, AfterValidator(_condition)]
    """What every sample must satisfy: an operator and a number, ``< 0.01``, ``>= 0.99``, ``== 0``."""
    range: Duration | None = None
    """Evaluate every point of the last ``range`` (a range query) instead of the latest value."""
    step: Duration | None = None
    """Resolution of a range query (default: the gate's ``interval``)."""


class MetricGate(actions.Params):
    cluster_only: ClassVar[Mapping[str, str]] = {
        "bearerTokenFile": "it reads files on the router's host", "basicAuth": "it reads files on the router's host",
        "caFile": "it reads files on the router's host"}

    url: str
    """The Prometheus-compatible API's base URL (``/api/v1/query`` is appended)."""
    bearer_token_file: str | None = Field(None, alias="bearerTokenFile")
    """A file holding a bearer token, read at each run (so a rotated token is picked up)."""
    basic_auth: BasicAuth | None = Field(None, alias="basicAuth")
    ca_file: str | None = Field(None, alias="caFile")
    insecure_skip_verify: bool = Field(False, alias="insecureSkipVerify")
    queries: list[Query] = Field(min_length=1)
    initial_delay: Duration = Field(0.0, alias="initialDelay")
    """Wait this long before the first measurement (new pods need traffic before a rate means anything)."""
    interval: Duration = 30.0
    window: Duration = 300.0
    """Measure for this long after ``initialDelay``; the last measurement is at the window's end."""
    failure_limit: int = Field(0, alias="failureLimit", ge=0)
    """Failed measurements a query may have; one more ends the gate ``failure`` at once."""
    inconclusive_limit: int = Field(0, alias="inconclusiveLimit", ge=0)
    """Inconclusive measurements a query may have; one more ends the gate ``error`` at once."""
    success_required: int = Field(1, alias="successRequired", ge=1)
    """Successful measurements each query needs by the window's end."""
    request_timeout: Duration = Field(10.0, alias="requestTimeout")

    @model_validator(mode="after")
    def _measurements_fit_the_outcome(self) -> "MetricGate":
        # Every measurement is a check of the outcome, which is one bus message: refused here, at
        # rule load, rather than as an outcome too large to publish after the whole window.
        planned = (int(self.window // self.interval) + 1) * len(self.queries)
        if planned > MAX_MEASUREMENTS:
            raise ValueError(f"window / interval x queries is {planned} measurements, over the {MAX_MEASUREMENTS} "
                             "an outcome lists: measure less often or over a shorter window")
        return self


def _json_number(value: float) -> float | str:
    """Checks are JSON: NaN and infinities are written as Prometheus spells them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def judge(series: list[promapi.Series], condition: conditions.Condition) -> tuple[Phase, str, list[dict[str, Any]]]:
    """The phase of one measurement, why, and the values seen (one entry per series)."""
    seen = [{"labels": dict(s.labels), "value": _json_number(s.values[-1][1]) if len(s.values) == 1 else None,
             **({"points": len(s.values)} if len(s.values) != 1 else {})} for s in series]
    points = [(s, v) for s in series for _, v in s.values]
    if not points:
        return "inconclusive", "no data: the query returned no series", seen
    for s, v in points:
        if not math.isnan(v) and not condition.holds(v):
            for entry in seen:  # a range query's entry names the first offending value
                if entry["labels"] == dict(s.labels) and entry["value"] is None:
                    entry["value"] = _json_number(v)
            return "failed", f"{v:g} is not {condition}" + (f" for {_labels(s.labels)}" if s.labels else ""), seen
    if any(math.isnan(v) for _, v in points):
        return "inconclusive", "NaN: no answer (e.g. a ratio of 0/0 without traffic)", seen
    return "successful", f"every value is {condition}", seen


def _labels(labels: Any) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _headers(params: MetricGate) -> dict[str, str]:
    try:
        if params.bearer_token_file:
            return {"Authorization": f"Bearer {Path(params.bearer_token_file).read_text().strip()}"}
        if params.basic_auth:
            password = Path(params.basic_auth.password_file).read_text().strip()
            token = base64.b64encode(f"{params.basic_auth.username}:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
    except OSError as exc:
        raise errors.PermanentError(f"metricGate credentials: {exc}") from exc
    return {}


def _ssl(params: MetricGate) -> ssl.SSLContext | bool | None:
    if params.insecure_skip_verify:
        return False
    if params.ca_file:
        try:
            return ssl.create_default_context(cafile=params.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise errors.PermanentError(f"metricGate caFile: {exc}") from exc
    return None


async def _measure(api: promapi.Api, http: aiohttp.ClientSession, number: int, query: Query,
                   condition: conditions.Condition, interval: float) -> dict[str, Any]:
    now = time.time()
    check: dict[str, Any] = {"name": f"{query.name or query.query} #{number}", "query": query.query,
                             "condition": str(condition), "measurement": number,
                             "at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds")}
    try:
        if query.range:
            check["range"] = query.range
            found = await api.range(http, query.query, now - query.range, now, query.step or interval)
        else:
            found = await api.instant(http, query.query, now)
    except errors.PermanentError:
        raise
    except errors.TemporaryError as exc:
        return {**check, "phase": "inconclusive", "passed": False, "error": str(exc)}
    phase, detail, seen = judge(found, condition)
    check.update(phase=phase, passed=phase == "successful", values=seen, detail=detail)
    return check


@plugins.action("metricGate", params=MetricGate)
async def metric_gate(params: MetricGate, context: actions.Context) -> actions.Result:
    if params.initial_delay + params.window >= context.timeout:
        raise errors.PermanentError(
            f"initialDelay + window ({params.initial_delay + params.window:g}s) does not fit in the run's "
            f"timeout ({context.timeout:g}s): raise the rule's policy.timeout")
    parsed = [conditions.parse(q.condition) for q in params.queries]
    api = promapi.Api(params.url, headers=_headers(params), ssl_context=_ssl(params),
                      timeout=min(params.request_timeout, params.interval))
    names = [q.name or q.query for q in params.queries]
    counts = [{"successful": 0, "failed": 0, "inconclusive": 0} for _ in params.queries]
    checks: list[dict[str, Any]] = []
    await asyncio.sleep(params.initial_delay)
    start = time.monotonic()
    number = 0
    async with aiohttp.ClientSession() as http:
        while True:
            number += 1
            measured = await asyncio.gather(*(_measure(api, http, number, q, c, params.interval)
                                              for q, c in zip(params.queries, parsed)))
            checks += measured
            for count, check in zip(counts, measured):
                count[check["phase"]] += 1
            for name, count, check in zip(names, counts, measured):
                if count["failed"] > params.failure_limit:
                    return actions.Result(
                        "failure", f"{name}: {check['detail']} (measurement {number}, {count['failed']} failed, "
                        f"failureLimit {params.failure_limit}); aborted {time.monotonic() - start:.0f}s into "
                        f"the {params.window:g}s window", checks, severity="high")
            for name, count, check in zip(names, counts, measured):
                if count["inconclusive"] > params.inconclusive_limit:
                    return actions.Result(
                        "error", f"inconclusive: {name}: {check.get('detail') or check.get('error')} "
                        f"(measurement {number}, inconclusiveLimit {params.inconclusive_limit})", checks)
            next_at = start + number * params.interval
            if next_at - start > params.window + 1e-6:
                break
            await asyncio.sleep(max(next_at - time.monotonic(), 0))
    short = [f"{name}: {count['successful']} of {params.success_required} required"
             for name, count in zip(names, counts) if count["successful"] < params.success_required]
    if short:
        return actions.Result("error", f"inconclusive: {'; '.join(short)} successful measurements", checks)
    return actions.Result("success", f"{len(params.queries)} quer{'y' if len(params.queries) == 1 else 'ies'} held "
                          f"over {params.window:g}s ({number} measurements each)", checks)
