"""What every settings section shares: the strict base model and the duration type.

A module of its own so that the core sections (``router.config.settings``) and the sections that
plug-ins declare next to themselves (through ``router.plugins``) share one base without importing
each other.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``"30s"``, ``"10m"``, ``"1.5h"``, ``250`` (seconds) -> seconds as float."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m or 2h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30s, 10m or 2h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": _DURATION.pattern}],
    "description": "a duration: seconds, or 250ms, 30s, 10m, 2h, 7d", "x-duration": True})]
"""Seconds; written as a number or with a unit. Its JSON Schema says both (``x-duration`` marks it
for ``router.rules.crd``, which makes it ``x-kubernetes-int-or-string``)."""


class Section(BaseModel):
    """Unknown keys are errors (a typo must not fall back to a default); settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
