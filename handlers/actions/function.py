"""``function``: an in-process Python function as the action (``router.functions``, docs/functions.md).

``spec.action.function: {ref: "package.module:handler", params: {...}}``. The ref is resolved when
the rule loads (``handlers.functions.loading``): a missing module or callable is a rule error at
``spec.action.function.ref``. Each attempt builds a fresh ``ctx`` and calls ``handler(event, ctx)``:
a coroutine function in the run's task (a timeout or a replacing run cancels it like any action), a
plain function on a worker thread (which cannot be stopped: past the timeout the run ends ``error``
and the thread is left to finish). Then the function's answer becomes the run's ``Result`` here,
and its exceptions go to the executor's one mapping (``plugins.attempts``), which ``functions
invoke`` shares.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import traceback
from typing import Any

from pydantic import ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from handlers.functions import loading, services
from router import plugins
from router.plugins import actions, errors, functions


class Function(actions.Params):
    ref: str
    """``package.module:callable`` (a dotted attribute path after the colon is allowed)."""
    params: dict[str, Any] = {}
    """Handed to the function as ``ctx.params``; templated like any action's parameters."""

    @field_validator("ref")
    @classmethod
    def _resolvable(cls, ref: str, info: ValidationInfo) -> str:
        try:
            loading.resolve(ref, reload_changed=bool(info.context and info.context.get(loading.LOADING)))
        except ValueError as exc:  # the message as it is, without pydantic's "Value error, " prefix
            raise PydanticCustomError("function_ref", str(exc)) from exc
        return ref


@plugins.action("function", params=Function)
async def run_function(params: Function, context: actions.Context) -> actions.Result:
    try:
        handler = loading.resolve(params.ref)
    except ValueError as exc:
        raise errors.PermanentError(str(exc)) from exc
    supplied = services.Services(context)
    ctx = functions.Context(
        run_id=context.run_id, rule=context.rule, attempt=context.attempt,
        deadline=context.deadline if context.deadline is not None else time.monotonic() + context.timeout,
        params=params.params, events={name: _event(e) for name, e in context.joined.items()},
        log=services.Log(logging.getLogger(f"functions.{params.ref.partition(':')[0]}"), supplied),
        traceparent=context.traceparent, helpers=supplied)
    try:
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None)):
            returned = await handler(_event(context.event), ctx)
        else:
            returned = await asyncio.to_thread(handler, _event(context.event), ctx)
            if inspect.isawaitable(returned):
                returned = await returned
    except (errors.TemporaryError, errors.PermanentError) as exc:  # the executor's to map
        masked = supplied.mask(str(exc))
        if masked != str(exc):  # not `from exc`: the original message would be logged with it
            kind = errors.TemporaryError if isinstance(exc, errors.TemporaryError) else errors.PermanentError
            raise kind(masked) from None
        raise
    except Exception as exc:
        ctx.log.exception("function %s raised", params.ref)
        raise errors.PermanentError(f"function {params.ref} raised {exc.__class__.__name__}: "
                                    f"{supplied.mask(str(exc))}{_where(exc)}") from exc
    finally:
        await supplied.close()
    result = outcome(returned, ctx.checks)
    return actions.Result(result.outcome, supplied.mask(result.reason), supplied.mask(result.checks), result.severity)


def outcome(returned: Any, recorded: list[functions.Check]) -> actions.Result:
    """The run's result for what a function returned and the checks ``ctx`` recorded."""
    if isinstance(returned, bool) or returned is None:
        returned = functions.Result(returned is not False)
    if not isinstance(returned, functions.Result):
        raise errors.PermanentError(f"a function returns Result, bool or None, not {type(returned).__name__}")
    listed = list(recorded) + [c for c in returned.checks if not any(c is r for r in recorded)]
    checks = [c.as_dict() if isinstance(c, functions.Check) else dict(c) for c in listed]
    if returned.passed:
        reason = returned.reason or (f"{len(checks)} check(s) passed" if checks else "passed")
        return actions.Result("success", reason, checks, returned.severity)
    failed = next((c for c in checks if not c.get("passed")), None)
    reason = returned.reason or (f"{failed['name']}: {failed.get('error') or 'failed'}" if failed
                                 else "the function returned False")
    return actions.Result("failure", reason, checks, returned.severity or "high")


def _event(event: plugins.CloudEvent) -> functions.Event:
    try:
        return functions.Event.of(event)
    except errors.BadRequest:  # data that says JSON and is not: the function gets the bytes
        return functions.Event(event.id, event.source, event.type, event.subject, event.attributes.get("time"),
                               event.data, dict(event.attributes))


def _where(exc: BaseException) -> str:
    """`` (at file.py:12)``: the innermost frame of the function's traceback, to find the line fast."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
