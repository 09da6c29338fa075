"""Does the service's version endpoint report the commit that was just pushed or built?

A GitHub ``push`` names the commit in ``data.after``, a ``workflow_run`` in
``data.workflow_run.head_sha``, a check suite in ``data.check_suite.head_sha``, GitLab in
``data.checkout_sha``. The endpoint answers JSON with the commit at ``params.field`` (``commit``).

params: ``url`` (the version endpoint), ``field`` (dotted path, default ``commit``).
"""

from __future__ import annotations

from router.functions import Context, Event, PermanentError, Result, TemporaryError


def commit_of(data: dict) -> str | None:
    for path in (("after",), ("head_sha",), ("workflow_run", "head_sha"), ("check_suite", "head_sha"),
                 ("checkout_sha",)):
        found = data
        for key in path:
            found = found.get(key) if isinstance(found, dict) else None
        if isinstance(found, str) and found:
            return found
    return None


async def serves_commit(event: Event, ctx: Context) -> Result:
    expected = commit_of(event.data if isinstance(event.data, dict) else {})
    if expected is None:
        raise PermanentError("the event names no commit (data.after, data.head_sha, data.workflow_run.head_sha)")
    url, field = ctx.params["url"], ctx.params.get("field", "commit")
    check = await ctx.probe(url, name="version endpoint", jsonEquals={field: expected})
    if check.passed:
        return Result.success(f"{url} serves {expected[:12]}")
    if "status" not in check.data or check.data["status"] >= 500:
        # Not up yet (refused, timed out, 503 while rolling out): policy.retry asks again.
        raise TemporaryError(f"{url}: {check.error}")
    return Result.failure(f"{url} does not serve {expected[:12]}: {check.error}")
