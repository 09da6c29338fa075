"""``functions invoke``: run an in-process function locally, exactly as the router would.

The developer loop for ``action: function``: the same ``function`` action from the plug-in catalog,
the same ``ctx`` (settings from ``--config``: ``functions.paths``, secrets, the Kubernetes client),
and the executor's own attempt loop (``plugins.attempts``: the timeout, retries of
``TemporaryError``, the outcome of every way a function ends), so what it prints is what the run's
``finished`` outcome would say. There is no bus: events the function publishes are listed instead.
The run id is derived like the router's from (``--rule``, event source, event id).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any

from pydantic import ValidationError

from router import errors
from router.config import settings as settings_mod
from router.model import events, tracecontext
from router.plugins import actions, attempts, catalog


def invoke(ref: str, event_file: str, params_json: str | None, as_json: bool, settings: settings_mod.Settings,
           *, rule: str = "functions-invoke", timeout: float = 300.0, retries: int = 0) -> int:
    """Print the outcome; exit 0 for ``success``, 1 for any other outcome, 2 for a usage error."""
    event = _event(event_file)
    try:
        given = json.loads(params_json) if params_json else {}
    except ValueError as exc:
        raise errors.ConfigError(f"--params is not JSON: {exc}") from exc
    action = catalog.load().actions["function"]
    try:  # as a rule load would: a changed module is imported again, a missing one is named
        params = action.params.model_validate({"ref": ref, "params": given}, context={"loading": True})
    except ValidationError as exc:
        raise errors.ConfigError(exc.errors()[0]["msg"], source=ref) from exc
    published: list[dict[str, Any]] = []

    async def publish(follow_up: events.CloudEvent) -> None:
        published.append(events.to_json_object(follow_up))

    run_id = hashlib.sha256(f"{rule}\x00{event.source}\x00{event.id}".encode()).hexdigest()[:32]
    context = actions.Context(run_id, rule, event, timeout, tracecontext.of(event), publish=publish)

    async def run() -> tuple[Any, int]:
        try:
            return await attempts.attempt(action.run, action.name, params, context, retry_limit=retries)
        finally:
            await catalog.load().shut_down()

    started = time.monotonic()
    result, made = asyncio.run(run())
    report = {"runId": run_id, "outcome": result.outcome, "reason": result.reason, "severity": result.severity,
              "attempts": made, "durationSeconds": round(time.monotonic() - started, 3), "checks": result.checks,
              "published": published}
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(f"{result.outcome}: {result.reason} ({made} attempt(s), {report['durationSeconds']:g}s)")
        for check in result.checks:
            mark = "ok  " if check.get("passed") else "FAIL"
            problem = f": {check['error']}" if check.get("error") else (f": {check['detail']}" if check.get("detail")
                                                                        else "")
            print(f"  {mark} {check.get('name')}{problem}")
        for follow_up in published:
            print(f"  published {follow_up.get('type')} {follow_up.get('id')}")
    return 0 if result.outcome == "success" else 1


def _event(path: str) -> events.CloudEvent:
    try:
        body = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return events.parse_structured(body)
    except errors.BadRequest as exc:
        raise errors.ConfigError(f"{path}: {exc.detail}") from exc
