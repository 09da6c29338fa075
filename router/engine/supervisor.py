"""Supervision of the long-running parts of ``serve``: none of them may die quietly.

``serve`` runs several loops for the life of the process (the NATS connection and its repairs,
the event router, the run executor, the rule reloader, every background source). Run in one
``gather``, one failure used to end them all, and a background source that failed at start ended
without a log line while ``/readyz`` still said 200. Here each runs as a named *part*:

- a part that raises is logged with its cause, marked failing (``/readyz`` names it with the
  reason) and restarted after ``backoff.delay`` (growing while it keeps failing);
- it counts as recovered once it has run for ``healthy_after`` seconds without failing again, so
  a part that fails on every attempt never flickers back to ready in between;
- an ``errors.ConfigError`` on a part's *first* attempt is a configuration mistake that no retry
  fixes: the supervisor sets ``stop``, and ``serve`` exits 2 with one line ``<part>: <message>``;
- a part that returns has nothing (more) to do (a source with nothing configured): it ends quietly.

Every task is kept (``_tasks``) and has a done-callback, so nothing is fire-and-forget.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import nats.errors

from router import errors
from router.bus import backoff

__all__ = ["Supervisor", "Part"]

log = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[None]]
"""Makes one attempt of a part: a fresh coroutine every time it is (re)started."""


@dataclass
class Part:
    name: str
    factory: Factory
    failing: str | None = None
    """Why the part last failed, until it has run healthy again; ``None`` while it is fine."""
    attempts: int = 0
    restarts: int = 0
    healthy: bool = False
    """It has run ``healthy_after`` seconds at least once (a later ConfigError is then retried)."""
    retry: backoff.Backoff = field(default_factory=lambda: backoff.Backoff(0.5, 30.0))
    task: asyncio.Task | None = None


def summary(exc: BaseException) -> str:
    """``Class: message``, with the cause's if there is one: enough to act on from one log line."""
    def one(e: BaseException) -> str:
        text = str(e).strip()
        return f"{e.__class__.__name__}: {text}" if text else e.__class__.__name__

    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return f"{one(exc)} (caused by {one(cause)})" if cause is not None else one(exc)


class Supervisor:
    """Runs parts, restarts failed ones, and says which are failing."""

    def __init__(self, stop: asyncio.Event, *, healthy_after: float = 5.0, base: float = 0.5,
                 cap: float = 30.0) -> None:
        self.stop = stop
        self.healthy_after = healthy_after
        self.base, self.cap = base, cap
        self.parts: dict[str, Part] = {}
        self.fatal: errors.ConfigError | None = None
        """Set when a part's first attempt raised ``ConfigError``; ``serve`` raises it after shutdown."""
        self._tasks: set[asyncio.Task] = set()

    def add(self, name: str, factory: Factory) -> None:
        if name in self.parts:
            raise ValueError(f"part {name!r} is supervised twice")
        part = self.parts[name] = Part(name, factory, retry=backoff.Backoff(self.base, self.cap))
        task = part.task = asyncio.create_task(self._keep(part), name=f"part:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    async def remove(self, name: str) -> None:
        """Stop the part ``name`` and forget it (parts that exist only while something does: one
        per subscription); nothing if there is no such part."""
        part = self.parts.pop(name, None)
        if part is not None and part.task is not None:
            part.task.cancel()
            await asyncio.gather(part.task, return_exceptions=True)

    def failing(self) -> dict[str, str]:
        """Failing parts by name, with the reason (what ``/readyz`` shows)."""
        return {part.name: part.failing for part in self.parts.values() if part.failing is not None}

    async def close(self) -> None:
        """Cancel every part and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, part: Part) -> None:
        loop = asyncio.get_running_loop()
        while True:
            part.attempts += 1
            timer = loop.call_later(self.healthy_after, self._healthy, part, part.attempts)
            try:
                await part.factory()
            except asyncio.CancelledError:
                raise
            except errors.ConfigError as exc:
                if not part.healthy and part.attempts == 1:
                    self._give_up(part, exc)
                    return
                delay = self._failed(part, exc)
            except Exception as exc:  # any failure, a bug included: log it, restart, show it in /readyz
                delay = self._failed(part, exc)
            else:
                log.debug("%s ended: nothing (more) to do", part.name)
                part.failing = None
                return
            finally:
                timer.cancel()
            part.restarts += 1
            await asyncio.sleep(delay)

    def _healthy(self, part: Part, attempt: int) -> None:
        if part.attempts != attempt:
            return
        part.healthy = True
        part.retry.reset()
        if part.failing is not None:
            log.info("%s recovered after %d restart(s)", part.name, part.restarts)
            part.failing = None

    def _failed(self, part: Part, exc: Exception) -> float:
        """Log and mark the failure; the delay before the restart."""
        part.failing = summary(exc)
        delay = part.retry.next()
        # A failure of the kind we raise or expect is one line; anything else (a bug) gets its traceback.
        expected = isinstance(exc, (errors.TriggerRouterError, nats.errors.Error, OSError, asyncio.TimeoutError))
        log.warning("%s failed: %s; restarting in %.1fs", part.name, part.failing, delay,
                    exc_info=None if expected else exc)
        if expected:
            log.debug("%s failed", part.name, exc_info=exc)
        return delay

    def _give_up(self, part: Part, exc: errors.ConfigError) -> None:
        part.failing = summary(exc)
        self.fatal = errors.ConfigError(" ".join(f"{part.name}: {exc}".split()))  # one line
        log.debug("%s: configuration error on the first attempt", part.name, exc_info=exc)
        self.stop.set()

    def _ended(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # _keep itself must never fail
            log.error("supervision of %s ended: %s", task.get_name(), summary(task.exception()),
                      exc_info=task.exception())
