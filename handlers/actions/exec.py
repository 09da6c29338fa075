"""``exec``: run a command as a check, e.g. a test binary shipped next to the router.

The command is an argv list, never a shell string, so event data rendered into an argument cannot
inject shell syntax. Only the tail of stdout and stderr is kept (bounded), so a chatty test cannot
bloat the outcome event. Exit code 0 is success, anything else failure, a timeout error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from pydantic import Field

from router import plugins
from router.plugins import Duration, actions, errors


class Exec(actions.Params):
    command: list[str] = Field(min_length=1)
    """argv: the program and its arguments."""
    env: dict[str, str] = {}
    """Extra environment variables (templated); the router's own environment is not passed on
    except PATH, HOME and LANG, so secrets in it do not leak into test processes."""
    workdir: str | None = Field(None, alias="workdir")
    timeout: Duration | None = None
    """Kill the process after this long; default the rule's policy.timeout."""
    tail_bytes: int = Field(4096, alias="tailBytes", ge=0, le=1024 * 1024)


_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


async def _tail(stream: asyncio.StreamReader, limit: int) -> bytes:
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-limit:] if limit else b""
    return kept


@plugins.action("exec", params=Exec)
async def run_exec(params: Exec, context: actions.Context) -> actions.Result:
    timeout = min(params.timeout or context.timeout, context.timeout)
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.update(params.env)
    env.update(TRIGGER_ROUTER_RUN_ID=context.run_id, TRIGGER_ROUTER_RULE=context.rule,
               TRIGGER_ROUTER_EVENT_ID=context.event.id)
    start = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *params.command, env=env, cwd=params.workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise errors.PermanentError(f"cannot start {params.command[0]!r}: {exc.strerror}") from exc
    readers = asyncio.gather(_tail(process.stdout, params.tail_bytes), _tail(process.stderr, params.tail_bytes))
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:  # timed out, or the run was cancelled
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
    stdout, stderr = await readers
    check = {"name": " ".join(params.command)[:200], "exitCode": process.returncode,
             "durationSeconds": round(time.monotonic() - start, 3),
             "stdoutTail": stdout.decode(errors="replace"), "stderrTail": stderr.decode(errors="replace")}
    if timed_out:
        check["passed"] = False
        return actions.Result("error", f"timed out after {timeout:g}s and was killed", [check], severity="high")
    check["passed"] = process.returncode == 0
    if process.returncode == 0:
        return actions.Result("success", "exit code 0", [check])
    return actions.Result("failure", f"exit code {process.returncode}", [check], severity="high")
