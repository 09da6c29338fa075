"""One run's action, attempted: the timeout, retries under ``policy.retry``, and the outcome each way
an action can end maps to.

The executor carries runs out with it, and ``trigger-router functions invoke`` runs a function
through it on a developer's machine, so a function ends the same way there as in the router: one
mapping, not a copy per caller. What only the executor has comes in as arguments: ``guard`` wraps
each attempt and each pause between attempts (the executor's cancels them when a newer run replaces
this one, raising ``errors.RunCancelled``).

- a returned ``Result`` is the outcome; ``errors.TemporaryError`` is retried after its ``delay`` (a
  server's ``Retry-After``) or else a backoff
  (``bus.backoff``, full jitter) until ``retry_limit`` retries are used;
- ``errors.PermanentError``: ``error`` with its message; past ``timeout``: the attempt's task is
  cancelled and the run ends ``error``; any other exception: ``error`` naming its type (a bug in an
  action ends the run, never the executor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Awaitable, Callable

from pydantic import BaseModel

from router import errors
from router.bus import backoff
from router.model import outcomes
from router.plugins import actions

log = logging.getLogger(__name__)

Guard = Callable[[Awaitable[Any]], Awaitable[Any]]
ActionRun = Callable[[BaseModel, actions.Context], Awaitable[outcomes.Result]]


async def _unguarded(work: Awaitable[Any]) -> Any:
    return await work


async def attempt(run: ActionRun, name: str, params: BaseModel, context: actions.Context, *, retry_limit: int = 0,
                  retry_backoff: float = 1.0, retry_max_backoff: float = 60.0,
                  guard: Guard = _unguarded) -> tuple[outcomes.Result, int]:
    """(the result, the attempts made) of ``run(params, context)`` under ``context.timeout``."""
    timeout = context.timeout
    number = 0
    while True:
        number += 1
        retryable, asked = False, None
        current = dataclasses.replace(context, attempt=number, deadline=time.monotonic() + timeout)
        try:
            result = await guard(asyncio.wait_for(run(params, current), timeout))
        except errors.RunCancelled as exc:
            return outcomes.Result("cancel", exc.reason), number
        except asyncio.TimeoutError:
            result = outcomes.Result("error", f"timed out after {timeout:g}s (policy.timeout)", severity="high")
        except errors.TemporaryError as exc:  # ``delay``: what the other side asked for (Retry-After)
            result, retryable, asked = outcomes.Result("error", f"temporary: {exc}"), True, exc.delay
        except errors.PermanentError as exc:
            result = outcomes.Result("error", str(exc))
        except Exception as exc:  # an action bug must end the run, not the executor
            log.exception("run %s: action %s crashed", context.run_id, name)
            result = outcomes.Result("error", f"action crashed: {exc.__class__.__name__}: {exc}")
        if not retryable or number > retry_limit:
            return result, number
        delay = backoff.delay(number, retry_backoff, retry_max_backoff) if asked is None else asked
        log.info("run %s attempt %d: %s; retrying in %.1fs", context.run_id, number, result.reason, delay)
        try:
            await guard(asyncio.sleep(delay))
        except errors.RunCancelled as exc:
            return outcomes.Result("cancel", exc.reason), number
