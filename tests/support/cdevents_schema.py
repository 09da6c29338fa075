"""Validate CDEvents against the official 0.5.1 JSON schemas in ``../shared``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "cdevents-0.5.1" / "schemas"


@lru_cache(maxsize=1)
def _registry() -> tuple[Registry, dict[str, dict]]:
    by_type: dict[str, dict] = {}
    resources = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        event_type = schema.get("properties", {}).get("context", {}).get("properties", {}).get("type", {})
        if "default" in event_type:
            by_type[event_type["default"]] = schema
    return Registry().with_resources(resources), by_type


def validate(cdevent: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``cdevent`` matches the schema of its type."""
    registry, by_type = _registry()
    schema = by_type[cdevent["context"]["type"]]
    jsonschema.Draft202012Validator(schema, registry=registry).validate(cdevent)
