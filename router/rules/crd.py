"""The TriggerRule and ClusterTriggerRule CustomResourceDefinitions, generated from the rule models.

The ``spec`` of a TriggerRule is exactly the ``spec`` of a rule file: its OpenAPI schema is made
here from the same pydantic models (``schema.Spec``, and each action's parameter model for
``spec.action``) that validate rule files, so the two cannot drift apart; ``trigger-router crd``
prints it and a test fails when the shipped ``deploy/crds/trigger-router.dev.yaml`` differs.

Kubernetes wants a *structural* OpenAPI v3.0 schema, which JSON Schema as pydantic writes it is
not; :func:`structural` converts: ``$ref`` inlined, ``anyOf [X, null]`` as ``nullable``, durations
(a number or ``30s``) as ``x-kubernetes-int-or-string``, free-form values (a filter, an inline
Job manifest) as ``x-kubernetes-preserve-unknown-fields``, draft-2020 numeric
``exclusiveMinimum`` as OpenAPI 3.0's boolean form, titles and defaults dropped (the router applies
defaults itself, and ``kubectl get -o yaml`` then shows what the user wrote). Unknown fields in a
CR are pruned by the apiserver, which ``kubectl`` reports as a warning.

``status``: ``conditions`` (``Accepted``: whether the rule loaded, with the message ``rules
validate`` would print when not), ``lastRun`` (run id, time, outcome, reason) and
``observedGeneration``; shown by the printer columns.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml
from pydantic import BaseModel

from router.rules import schema

GROUP = "trigger-router.dev"
VERSION = "v1alpha1"
KINDS = (("TriggerRule", "triggerrules", "Namespaced", ["tr"]),
         ("ClusterTriggerRule", "clustertriggerrules", "Cluster", ["ctr"]))
_DROP = {"title", "default", "examples", "discriminator"}
_PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}


def structural(node: Any, defs: Mapping[str, Any]) -> Any:
    """One JSON Schema node (pydantic's) as a structural OpenAPI v3.0 schema node."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = structural(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        extra = {k: v for k, v in node.items() if k not in ("$ref", *_DROP)}
        return {**target, **extra}
    if node.get("x-duration"):
        return {"x-kubernetes-int-or-string": True,
                "description": node.get("description", "a duration: seconds, or 250ms, 30s, 10m, 2h, 7d")}
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            options = [o for o in node[combinator] if o.get("type") != "null"]
            nullable = len(options) < len(node[combinator])
            rest = {k: v for k, v in node.items() if k not in (combinator, *_DROP)}
            if len(options) == 1:  # what is left beside the options is annotation (a description)
                merged = {**structural(options[0], defs), **rest}
            else:
                merged = {**_PRESERVE, **({"description": rest["description"]} if "description" in rest else {})}
            return {**merged, "nullable": True} if nullable else merged
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k not in ("allOf", *_DROP)}
        return {**structural(node["allOf"][0], defs), **rest}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: structural(child, defs) for name, child in value.items()}
        elif key == "items":
            out[key] = structural(value, defs) if value else {**_PRESERVE}
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = structural(value, defs)
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if not any(k in out for k in ("type", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")):
        if "enum" in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        else:
            return {**_PRESERVE, **({"description": out["description"]} if "description" in out else {})}
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out.update(_PRESERVE)
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    generated = model.model_json_schema(by_alias=True, mode="validation")
    return structural(generated, generated.get("$defs", {}))


def spec_schema(actions: Mapping[str, Any]) -> dict[str, Any]:
    """``spec``: the rule file's spec, with ``spec.action`` spelled out per action of ``actions``."""
    spec = model_schema(schema.Spec)
    spec["properties"]["action"] = {
        "type": "object", "minProperties": 1, "maxProperties": 1,
        "description": "exactly one action: its name and its parameters",
        "properties": {name: {**model_schema(action.params), "nullable": True}
                       for name, action in sorted(actions.items())}}
    return spec


STATUS = {
    "type": "object",
    "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                       "items": {"type": "object", "required": ["type", "status"], "properties": {
                           "type": {"type": "string"},
                           "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                           "reason": {"type": "string"},
                           "message": {"type": "string"},
                           "observedGeneration": {"type": "integer", "format": "int64"},
                           "lastTransitionTime": {"type": "string", "format": "date-time"}}}},
        "lastRun": {"type": "object", "properties": {
            "runId": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
            "outcome": {"type": "string"}, "reason": {"type": "string"}}},
    },
}
COLUMNS = [
    {"name": "Accepted", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Accepted")].status'},
    {"name": "Last outcome", "type": "string", "jsonPath": ".status.lastRun.outcome"},
    {"name": "Last run", "type": "date", "jsonPath": ".status.lastRun.time"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def definitions(actions: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Both CRDs, for the actions of ``actions`` (the plug-in catalog's)."""
    spec = spec_schema(actions)
    found = []
    for kind, plural, scope, short in KINDS:
        found.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/name": "trigger-router"}},
            "spec": {
                "group": GROUP, "scope": scope,
                "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                          "shortNames": short, "categories": ["trigger-router"]},
                "versions": [{
                    "name": VERSION, "served": True, "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": COLUMNS,
                    "schema": {"openAPIV3Schema": {
                        "type": "object", "required": ["spec"],
                        "description": f"{kind}: a trigger rule as a Kubernetes object (README: Trigger rules)",
                        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                       "metadata": {"type": "object"}, "spec": spec, "status": STATUS}}},
                }],
            },
        })
    return found


HEADER = "# Generated by `trigger-router crd` from the rule models (router/rules/crd.py); do not edit.\n"


def render(actions: Mapping[str, Any]) -> str:
    """The CRDs as the YAML stream that ships in ``deploy/crds/`` and the Helm chart's ``crds/``."""
    return HEADER + yaml.safe_dump_all(definitions(actions), sort_keys=False, width=120)
