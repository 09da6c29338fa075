"""Requests checked against the published OpenAPI definition of the Subscriptions API, with its errata.

``subscriptions-openapi.yaml`` (beside this module, an unmodified copy of the CloudEvents spec's
file) is the contract clients are written against, so a request is validated against *it*, not a
schema of our own that could drift from it. Taken literally, though, the published schemas accept
no filter and no protocol setting at all (``tests/unit/router/subscriptions/test_schema.py`` shows
the spec's own example subscription failing), so three errata are applied when it is loaded, each
the smallest change that makes a schema say what its description says:

1. Every list of filter alternatives (``filters[]``, ``all[]``, ``any[]``, ``not``) is a ``oneOf``
   that includes the generic ``Filter`` (any object). Every filter also matches ``Filter``, so
   ``oneOf`` ("exactly one") can never hold. The generic branch is dropped: this manager supports
   exactly the spec's dialects, and the spec says an unsupported dialect MUST be rejected.
2. ``SqlFilter`` allows additional properties, so ``{"exact": ...}`` matched both it and
   ``ExactFilter``. It is closed like the other dialects: one dialect per filter.
3. ``protocolsettings`` is a ``oneOf`` of settings schemas that each ``allOf`` a base with
   ``additionalProperties: false``, so every setting is forbidden (and ``{}`` matches several). The
   settings are those of the subscription's protocol with the base's closure applied to their own
   properties; only ``HTTP`` is delivered, so that is ``HTTPSettings``: ``headers`` and ``method``.

Errors become ``errors.BadRequest`` whose ``field`` names the offending value the way a client
writes it (``filters[0].sql``); for a filter the error of the dialect the filter names is reported,
not the seven alternatives it is not.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from router import errors

__all__ = ["DEFINITION", "check", "corrected", "field_of", "published", "validator"]

DEFINITION = Path(__file__).with_name("subscriptions-openapi.yaml")
SCHEMAS = "#/components/schemas/"
DIALECT_SCHEMAS = {"all": "AllFilter", "any": "AnyFilter", "not": "NotFilter", "exact": "ExactFilter",
                   "prefix": "PrefixFilter", "suffix": "SuffixFilter", "sql": "SqlFilter"}
DETAIL_CHARS = 300
"""A schema message quotes the offending value; it is cut so an answer never echoes a large body."""


@functools.cache
def published() -> dict[str, Any]:
    """The OpenAPI document exactly as published."""
    return yaml.safe_load(DEFINITION.read_text())


def _filter_choices(schemas: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield schemas["SubscriptionRequest"]["properties"]["filters"]["items"]
    for name, key in (("AllFilter", "all"), ("AnyFilter", "any")):
        yield schemas[name]["allOf"][1]["properties"][key]["items"]
    yield schemas["NotFilter"]["allOf"][1]["properties"]["not"]


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the three errata of the module docstring applied (a copy)."""
    fixed = copy.deepcopy(document)
    schemas = fixed["components"]["schemas"]
    for choice in _filter_choices(schemas):  # erratum 1
        choice["oneOf"] = [branch for branch in choice["oneOf"] if branch.get("$ref") != SCHEMAS + "Filter"]
    schemas["SqlFilter"]["allOf"][1]["additionalProperties"] = False  # erratum 2
    http = schemas["HTTPSettings"]["allOf"][1]["properties"]  # erratum 3
    schemas["SubscriptionRequest"]["properties"]["protocolsettings"] = {
        "type": "object", "properties": copy.deepcopy(http), "additionalProperties": False}
    return fixed


@functools.cache
def validator(schema: str) -> jsonschema.Draft4Validator:
    """A validator of ``components.schemas.<schema>`` of the corrected document (OpenAPI 3.0 schema
    objects are JSON Schema draft 4 with extra annotations, which draft 4 ignores)."""
    return jsonschema.Draft4Validator({**corrected(published()), "$ref": SCHEMAS + schema})


def field_of(path: Iterable[Any]) -> str:
    """``["filters", 0, "sql"]`` -> ``filters[0].sql``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _dialect_error(error: ValidationError) -> ValidationError | str:
    """For a filter that matched none of the alternatives: the error of the one it names, or why it
    names none (a string)."""
    entry = error.instance
    if not isinstance(entry, dict) or len(entry) != 1:
        return "a filter must be an object with exactly one dialect key, e.g. {\"exact\": {\"type\": \"com.example\"}}"
    (name,) = entry
    if name not in DIALECT_SCHEMAS:
        return f"unknown filter dialect {str(name)[:64]!r} (supported: {', '.join(sorted(DIALECT_SCHEMAS))})"
    names = [branch.get("$ref", "").removeprefix(SCHEMAS) for branch in error.schema["oneOf"]]
    index = names.index(DIALECT_SCHEMAS[name])
    own = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == index]
    return best_match(own) if own else f"the {name} filter is not valid"


def _explain(error: ValidationError) -> tuple[str, str]:
    """(detail, field) of the most relevant error, descending into filters by their dialect."""
    while error.validator == "oneOf" and error.context and error.schema.get("oneOf") and all(
            branch.get("$ref", "").removeprefix(SCHEMAS) in DIALECT_SCHEMAS.values() for branch in error.schema["oneOf"]):
        refined = _dialect_error(error)
        if isinstance(refined, str):
            field = field_of(error.absolute_path)
            if "unknown filter dialect" in refined:
                field += f".{next(iter(error.instance))}"
            return refined, field
        error = refined
    message = error.message if len(error.message) <= DETAIL_CHARS else error.message[:DETAIL_CHARS] + "..."
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):  # name the missing member
        path += [name for name in error.validator_value if name not in error.instance][:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):  # and the unexpected one
        path += sorted(str(k) for k in error.instance if k not in error.schema.get("properties", {}))[:1]
    return message, field_of(path)


def check(document: Any, schema: str) -> None:
    """``errors.BadRequest`` naming the field unless ``document`` is valid under ``schema``
    (``SubscriptionRequest`` for a create, ``Subscription`` for an update)."""
    found = list(validator(schema).iter_errors(document))
    if not found:
        return
    detail, field = _explain(best_match(found))
    raise errors.BadRequest(f"{field + ': ' if field else ''}{detail} (subscriptions-openapi.yaml)", field=field or None)
