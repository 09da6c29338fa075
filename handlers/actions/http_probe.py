"""``httpProbe``: a smoke test from inside the router, over HTTP.

Every check is tried until all pass together or the deadline passes, ``interval`` apart: a freshly
rolled-out service often needs a few seconds before it answers, and a probe that gives up on the
first refused connection reports a failure that is not there. The outcome lists each check's last
attempt (status, latency, what did not hold).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any, Literal

import aiohttp
from pydantic import Field

from router import plugins
from router.plugins import Duration, actions


class Check(actions.Params):
    name: str | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str
    headers: dict[str, str] = {}
    body: str | None = None
    expect_status: list[int] = Field([200], alias="expectStatus")
    body_contains: str | None = Field(None, alias="bodyContains")
    json_equals: dict[str, Any] = Field({}, alias="jsonEquals")
    """Dotted path in the JSON response -> expected value, e.g. ``{"status": "ok", "build.sha": "..."}``."""
    max_latency: Duration | None = Field(None, alias="maxLatency")
    insecure_skip_verify: bool = Field(False, alias="insecureSkipVerify")
    ca_file: str | None = Field(None, alias="caFile")


class HttpProbe(actions.Params):
    checks: list[Check] = Field(min_length=1)
    interval: Duration = 2.0
    """Pause between rounds while a check still fails."""
    deadline: Duration = 60.0
    """Give up after this long (bounded also by the rule's policy.timeout)."""
    request_timeout: Duration = Field(10.0, alias="requestTimeout")


def _dig(document: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(document, list) and key.isdigit() and int(key) < len(document):
            document = document[int(key)]
        elif isinstance(document, dict) and key in document:
            document = document[key]
        else:
            raise KeyError(path)
    return document


async def attempt_check(http: aiohttp.ClientSession, check: Check, timeout: float,
                   traceparent: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"name": check.name or f"{check.method} {check.url}", "url": check.url}
    ssl_option: Any = None
    if check.insecure_skip_verify:
        ssl_option = False
    elif check.ca_file:
        ssl_option = ssl.create_default_context(cafile=check.ca_file)
    start = time.perf_counter()
    try:
        # The run's trace continues at the probed service, unless the check sets its own.
        headers = check.headers if traceparent is None or any(k.lower() == "traceparent" for k in check.headers) \
            else {**check.headers, "traceparent": traceparent}
        async with http.request(check.method, check.url, headers=headers, data=check.body,
                                timeout=aiohttp.ClientTimeout(total=timeout), ssl=ssl_option,
                                allow_redirects=False) as response:
            text = await response.text(errors="replace")
            result["status"] = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        result.update(passed=False, error=f"{exc.__class__.__name__}: {exc}".rstrip(": "))
        return result
    latency = time.perf_counter() - start
    result["latencyMs"] = round(latency * 1000, 1)
    problems = []
    if response.status not in check.expect_status:
        problems.append(f"status {response.status} not in {check.expect_status}")
    if check.body_contains is not None and check.body_contains not in text:
        problems.append(f"body does not contain {check.body_contains!r}")
    if check.json_equals:
        problems += _json_problems(text, check.json_equals)
    if check.max_latency is not None and latency > check.max_latency:
        problems.append(f"latency {latency * 1000:.0f} ms over {check.max_latency * 1000:.0f} ms")
    result["passed"] = not problems
    if problems:
        result["error"] = "; ".join(problems)
    return result


def _json_problems(text: str, expected: dict[str, Any]) -> list[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return ["body is not JSON"]
    problems = []
    for path, wanted in expected.items():
        try:
            actual = _dig(document, path)
        except KeyError:
            problems.append(f"JSON field {path!r} is missing")
            continue
        if actual != wanted:
            problems.append(f"JSON field {path!r} is {actual!r}, expected {wanted!r}")
    return problems


@plugins.action("httpProbe", params=HttpProbe)
async def http_probe(params: HttpProbe, context: actions.Context) -> actions.Result:
    deadline = time.monotonic() + min(params.deadline, context.timeout)
    pending = list(range(len(params.checks)))
    results: list[dict[str, Any]] = [{} for _ in params.checks]
    attempts = 0
    async with aiohttp.ClientSession() as http:
        while True:
            attempts += 1
            remaining = max(deadline - time.monotonic(), 0.1)
            round_results = await asyncio.gather(*(
                attempt_check(http, params.checks[i], min(params.request_timeout, remaining), context.traceparent)
                for i in pending))
            for i, result in zip(pending, round_results):
                results[i] = {**result, "attempts": attempts}
            pending = [i for i in pending if not results[i]["passed"]]
            if not pending:
                return actions.Result("success", f"{len(results)} check(s) passed", results)
            if time.monotonic() + params.interval >= deadline:
                failed = results[pending[0]]
                return actions.Result(
                    "failure", f"{len(pending)} of {len(results)} check(s) still failing after {attempts} "
                    f"attempt(s): {failed['name']}: {failed.get('error')}", results, severity="high")
            await asyncio.sleep(params.interval)

