"""What an action receives and returns; actions themselves live in ``handlers/actions``.

An action is an async function ``run(params, context) -> Result`` registered with
``@registry.action(name, params=Model)``. ``params`` is its pydantic model, validated once at rule
load (with templates still unrendered) and again after rendering for each run. Raising
``errors.TemporaryError`` asks for a retry under the rule's policy; ``errors.PermanentError`` ends
the run with outcome ``error``; a verification that ran and found a problem returns ``failure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from router.events import CloudEvent

Outcome = Literal["success", "failure", "error", "cancel"]
Severity = Literal["low", "medium", "high", "critical"]


class Params(BaseModel):
    """Base of every action's parameter model: unknown keys are errors, camelCase as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class Context:
    run_id: str
    rule: str
    event: CloudEvent
    timeout: float
    """Seconds this attempt may take; the executor cancels the action after it."""


@dataclass
class Result:
    outcome: Outcome
    reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """One entry per check: at least ``name`` and ``passed``; published in the outcome's customData."""
    severity: Severity | None = None
