"""What a reporter receives and returns; reporters themselves live in ``handlers/reporters``.

A reporter tells the outside world how a run is going: a GitHub check run on the commit, a GitLab
commit status, a CloudEvent to a URL. It is an async function ``report(params, context, state)``
registered with ``@plugins.reporter(name, params=Model)`` and listed per rule in ``spec.report``.

- It is called once per stage (``queued``, ``started``, ``finished``) that it ``reacts`` to, after
  the stage's outcome event is stored: a report can never change, delay or lose a run's outcome.
- ``params`` is its model (a ``plugins.Params``), validated at rule load with templates unrendered
  and again once rendered against the triggering event, like an action's.
- ``state`` is what this reporter returned for this run at an earlier stage (``{}`` at first):
  a check-run id, a "created" flag. Returning a dict replaces it, ``None`` keeps it. The core
  stores it before the stage counts as reported, so a redelivered stage sees what was done.
- Raising ``errors.TemporaryError`` (``delay=`` from :mod:`ratelimits` when the server asked for
  one) retries the stage later with backoff; ``errors.PermanentError`` records the failure and
  gives up on that stage; :class:`Skip` records why there is nothing to report (no commit).
  Every attempt is kept in the run's report state and shown by ``runs show``.
- Stages can arrive late or twice (a retried ``started`` after ``finished``): the core never calls
  a stage older than one already reported, and a reporter must make each call safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from router.model.commits import Commit
from router.model.events import CloudEvent
from router.model.outcomes import Result

__all__ = ["STAGES", "Context", "Skip", "Stage"]

Stage = Literal["queued", "started", "finished"]
STAGES: tuple[Stage, ...] = ("queued", "started", "finished")


class Skip(Exception):
    """Nothing to report for this stage, and why (no commit found, not a deployment): not a failure."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Context:
    stage: Stage
    run_id: str
    """The run's id: stable across redeliveries, so also an idempotency key (a check run's ``external_id``)."""
    rule: str
    action: str
    environment: str
    trigger: CloudEvent
    outcome: CloudEvent
    """The ``testsuiterun.<stage>`` CDEvent as it was published (what the ``cloudevent`` reporter sends)."""
    commit: Commit | None
    """The commit the run is about (trigger, joined events, or the image's revision label), if any."""
    commit_why: str
    """Where the commit was found, or why there is none (for :class:`Skip` messages)."""
    attempt: int = 1
    """This stage's report attempt, from 1."""
    last_attempt: bool = False
    """No retry follows if this attempt fails temporarily (``reporting.max_attempts``): time to
    dead-letter what could not be delivered."""
    result: Result | None = None
    """How the run ended (``finished`` only)."""
    run_attempts: int = 0
    duration: float = 0.0
    joined: Mapping[str, CloudEvent] = field(default_factory=dict)
    """A correlated run's joined events by requirement name."""
    session: Any = None
    """A shared ``aiohttp.ClientSession`` (no base URL, no default headers) for the reporter's requests."""
