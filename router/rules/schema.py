"""The rule document as users write it: ``apiVersion``, ``kind: TriggerRule``, ``metadata``, ``spec``.

The pydantic models here are the one definition of what a rule file may say; ``loading`` compiles
a validated document into a ``Rule``, and the run-policy part of ``spec`` lives in ``policy``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from router.rules import policy as policy_spec

API_VERSION = "trigger-router.dev/v1alpha1"
KIND = "TriggerRule"
MAX_REPORTERS = 8
"""Reporters one rule may list: each is called up to three times per run."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Spec(_Model):
    description: str = ""
    filters: list[Any] = []
    environment: str | None = None
    """The environment the verification is about (templated); default: the event's source."""
    action: dict[str, Any]
    policy: policy_spec.Policy = policy_spec.Policy()
    correlate: policy_spec.Correlate | None = None
    """Fire once when every required event arrived for one key within a window."""
    report: list[dict[str, Any]] = Field([], max_length=MAX_REPORTERS)
    """Where the run's progress and verdict are told: one ``{<reporter>: {params}}`` per entry."""


class RuleDocument(_Model):
    api_version: str = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TriggerRule"]
    metadata: Metadata
    spec: Spec

    @field_validator("api_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        # An unknown version is a file written for another release (or another tool): its fields
        # may mean something else, so it is refused rather than read as ours.
        if value != API_VERSION:
            raise ValueError(f"unknown apiVersion {value[:80]!r} (this release reads {API_VERSION})")
        return value
