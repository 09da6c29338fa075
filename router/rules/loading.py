"""Trigger rules: the YAML users write, validated and compiled once at load.

A rule file holds one or more YAML documents of ``kind: TriggerRule`` (their model is in
``schema``). Everything that can be
checked before an event arrives is checked at load (filter dialects, CEL syntax, action name and
parameters, templates, waits that would outlive ``bus.max_age`` when it is given), and every error
names the file, the rule and the field path, because a rule that fails at 3 a.m. on the first
matching event is a rule that should never have loaded.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

from pydantic import BaseModel, ValidationError

from router import errors
from router.model.events import CloudEvent
from router.rules import filters
from router.rules import policy as policy_spec
from router.rules import schema, templates, yamlfile
from router.rules.filters.logical import AllOf, AnyOf


class ActionSpec(Protocol):
    """What rules need to know of an action: its name and its parameter model.

    The plug-in catalog's actions (``router.plugins.catalog.Action``) are such specs; rules never
    import the plug-ins, the caller hands them the catalog's ``actions``.
    """

    name: str
    params: type[BaseModel]


@dataclass(frozen=True)
class Report:
    """One entry of ``spec.report``: a reporter and its still-templated parameters."""

    reporter: ActionSpec
    params: templates.Template
    path: str
    """``spec.report[0].githubCheckRun``: where render errors point."""


@dataclass(frozen=True, eq=False)
class Rule:
    name: str
    file: str
    description: str
    filter: AllOf
    action: ActionSpec
    params: templates.Template
    environment: templates.Template | None
    policy: policy_spec.Policy
    keys: policy_spec.Keys = policy_spec.Keys()
    correlation: policy_spec.CompiledCorrelation | None = None
    namespace: str | None = None
    """A namespaced TriggerRule's namespace: its parameters may name no other (``confine``)."""
    reports: tuple[Report, ...] = ()

    def matches(self, event: CloudEvent) -> bool:
        return self.filter.matches(event)

    def render(self, event: CloudEvent, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The action parameters for ``event``, templates rendered and validated again.

        ``extra``: more CEL variables (``events`` for a correlated run)."""
        rendered = self.params.render(event, extra)
        if self.namespace is not None:
            problem = confine(rendered, self.namespace, f"spec.action.{self.action.name}")
            if problem:
                raise errors.PermanentError(problem)
        try:
            return self.action.params.model_validate(rendered).model_dump(mode="json", by_alias=True, exclude_none=True)
        except ValidationError as exc:
            raise errors.PermanentError(f"rendered parameters are invalid: {_first_error(exc)}") from exc

    def render_reports(self, event: CloudEvent, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``spec.report`` for ``event``: ``{"reporter", "params"}`` each, or ``{"reporter", "error"}``
        when its templates cannot be rendered (that reporter fails; the run does not)."""
        plans = []
        for report in self.reports:
            plan: dict[str, Any] = {"reporter": report.reporter.name}
            try:
                rendered = report.params.render(event, extra)
                plan["params"] = report.reporter.params.model_validate(rendered).model_dump(
                    mode="json", by_alias=True, exclude_none=True)
            except errors.PermanentError as exc:
                plan["error"] = f"{report.path}: {exc}"
            except ValidationError as exc:
                plan["error"] = f"{report.path}: rendered parameters are invalid: {_first_error(exc)}"
            plans.append(plan)
        return plans

    def environment_for(self, event: CloudEvent) -> str:
        if self.environment is None:
            return event.source
        return str(self.environment.render(event))


def confine(params: Any, namespace: str, path: str, *, templated_ok: bool = False) -> str | None:
    """Why ``params`` act outside ``namespace``, or None: every ``namespace`` key at any depth (the
    action's, a Job manifest's ``metadata.namespace``, a ConfigMap reference's) must name it.
    ``templated_ok``: at load, a value still holding ``{{ }}`` is checked once rendered instead."""
    if isinstance(params, dict):
        for key, value in params.items():
            where = f"{path}.{key}"
            if key == "namespace" and value != namespace and not (
                    templated_ok and isinstance(value, str) and "{{" in value):
                return (f"{where}: a TriggerRule in namespace {namespace!r} acts only there, not in {value!r} "
                        "(a ClusterTriggerRule may act anywhere)")
            found = confine(value, namespace, where, templated_ok=templated_ok)
            if found:
                return found
    elif isinstance(params, list):
        for index, value in enumerate(params):
            found = confine(value, namespace, f"{path}[{index}]", templated_ok=templated_ok)
            if found:
                return found
    return None


def cluster_only(model: type[BaseModel], params: Any, namespace: str, path: str) -> str | None:
    """Why a namespaced rule may not set one of ``params``, or None: the action's model names the
    parameters that reach beyond a namespace (``Params.cluster_only``: a router-local file the
    tenant could read through it, the router's event stream it could write to) and why."""
    forbidden: Mapping[str, str] = getattr(model, "cluster_only", {})
    if not isinstance(params, dict):
        return None
    for key, why in forbidden.items():
        spellings = [key, *(name for name, field in model.model_fields.items() if field.alias == key)]
        if any(params.get(spelling) not in (None, False, {}, [], "") for spelling in spellings):
            return (f"{path}.{key}: a TriggerRule in namespace {namespace!r} may not set {key} ({why}); "
                    "a ClusterTriggerRule may")
    return None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = field_path(first["loc"])
    return f"{where}: {describe(first)}" if where else describe(first)


def describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as a rule error's message."""
    return "unknown field" if error["type"] == "extra_forbidden" else error["msg"]


def label(doc: Any, index: int) -> str:
    """What errors call the ``index``-th document: its ``metadata.name`` if usable, else ``#<n>``."""
    written = doc.get("metadata", {}).get("name") if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict) \
        else None
    # The label goes into a one-line error: a name that would break the line is not repeated.
    return written if isinstance(written, str) and written.isprintable() and 0 < len(written) <= 253 else f"#{index + 1}"


def field_path(parts: Iterable[Any]) -> str:
    """A pydantic location as rule errors spell fields: ``spec.action.httpProbe.checks[0].url``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def compile_document(doc: Any, file: str, index: int, actions: Mapping[str, ActionSpec],
                     max_age: float | None = None, *, name: str | None = None, namespace: str | None = None,
                     namespaced_actions: frozenset[str] | None = None,
                     reporters: Mapping[str, ActionSpec] | None = None) -> Rule:
    """One rule; ``max_age`` (``bus.max_age``): refuse a policy whose runs could wait longer.

    ``reporters``: the plug-in catalog's, for ``spec.report`` (none known when not given).

    ``name``: the rule's name instead of ``metadata.name`` (a TriggerRule is ``<namespace>/<name>``).
    ``namespace``: the rule may act in that namespace only, with one of ``namespaced_actions``."""
    try:
        parsed = schema.RuleDocument.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise errors.RuleError(describe(first), file=file, rule=name or label(doc, index),
                               field=field_path(first["loc"])) from exc
    spec = parsed.spec
    try:
        members = [filters.compile(f, f"spec.filters[{i}]") for i, f in enumerate(spec.filters)]
        action = _action(spec.action, actions)
        params_path = f"spec.action.{action.name}"
        raw_params = spec.action[action.name] or {}
        if namespace is not None:
            if namespaced_actions is not None and action.name not in namespaced_actions:
                raise errors.RuleError(f"a namespaced TriggerRule may use {', '.join(sorted(namespaced_actions))}, "
                                       f"not {action.name} (a ClusterTriggerRule may)", field=params_path)
            problem = confine(raw_params, namespace, params_path, templated_ok=True) or \
                cluster_only(action.params, raw_params, namespace, params_path)
            if problem:
                where, _, message = problem.partition(": ")
                raise errors.RuleError(message, field=where)
        _validated(action.params, raw_params, params_path)
        params = templates.Template(raw_params, params_path)
        reports = tuple(report(entry, i, reporters or {}) for i, entry in enumerate(spec.report))
        environment = templates.Template(spec.environment, "spec.environment") if spec.environment else None
        keys = policy_spec.compile_keys(spec.policy)
        policy_spec.check_limits(spec.policy, max_age)
        policy_spec.check_correlation(spec.correlate, max_age)
        correlation = policy_spec.compile_correlation(spec.correlate)
        if correlation is not None:
            members.append(AnyOf(correlation.any_of()))
    except errors.RuleError as exc:
        raise errors.RuleError(exc.message, file=file, rule=name or parsed.metadata.name, field=exc.field) from exc
    return Rule(name or parsed.metadata.name, file, spec.description, AllOf(members), action, params, environment,
                spec.policy, keys, correlation, namespace, reports)


def _validated(model: type[BaseModel], raw: Any, path: str) -> None:
    """Parameters as written (templates unrendered) against a plug-in's model; RuleError at the field."""
    found = parameter_errors(model, raw, path)
    if found:
        raise found[0]


def parameter_errors(model: type[BaseModel], raw: Any, path: str) -> list[errors.RuleError]:
    """Every error of parameters as written against a plug-in's model, each at its field.

    The validation context ``{"loading": True}`` tells a model this is a rule load: the ``function``
    action re-imports a changed module then, and only then (not when each run is validated)."""
    try:
        model.model_validate(raw, context={"loading": True})
    except ValidationError as exc:
        return [errors.RuleError(describe(error), field=f"{path}.{field_path(error['loc'])}".rstrip("."))
                for error in exc.errors()]
    return []


def report(entry: dict[str, Any], index: int, reporters: Mapping[str, ActionSpec]) -> Report:
    path = f"spec.report[{index}]"
    known = ", ".join(sorted(reporters)) or "none"
    if len(entry) != 1:
        raise errors.RuleError(f"one reporter per entry, found {len(entry)} (known: {known})", field=path)
    (name,) = entry
    if name not in reporters:
        raise errors.RuleError(f"unknown reporter {name!r} (known: {known})", field=f"{path}.{name}")
    raw = entry[name] or {}
    _validated(reporters[name].params, raw, f"{path}.{name}")
    return Report(reporters[name], templates.Template(raw, f"{path}.{name}"), f"{path}.{name}")


def _action(spec: dict[str, Any], actions: Mapping[str, ActionSpec]) -> ActionSpec:
    if len(spec) != 1:
        raise errors.RuleError(f"exactly one action is required, found {len(spec)} "
                               f"(known: {', '.join(sorted(actions))})", field="spec.action")
    (name,) = spec
    if name not in actions:
        raise errors.RuleError(f"unknown action {name!r} (known: {', '.join(sorted(actions))})",
                               field=f"spec.action.{name}")
    return actions[name]


def expand(paths: Iterable[str]) -> list[Path]:
    """Files named, ``*.yaml``/``*.yml`` in directories named, and glob matches; sorted, unique.

    In a directory, entries whose name starts with ``.`` are skipped at any depth: editors' and
    git's files, and the kubelet's layout of a mounted ConfigMap, which puts the real files in a
    hidden timestamped directory and links ``..data`` and each key to it (walking all of it found
    every rule twice). Files are also unique by real path, so two links to one file load it once.
    """
    found: list[Path] = []
    for entry in paths:
        matches = glob.glob(entry, recursive=True) if glob.has_magic(entry) else [entry]
        if not matches:
            raise errors.RuleError("no file matches this pattern", file=entry)
        for match in matches:
            path = Path(match)
            if path.is_dir():
                found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                                    and not any(part.startswith(".") for part in p.relative_to(path).parts)))
            elif path.exists():
                found.append(path)
            else:
                raise errors.RuleError("no such file or directory", file=entry)
    unique: dict[Path, Path] = {}
    for path in sorted(dict.fromkeys(found)):
        unique.setdefault(path.resolve(), path)
    return sorted(unique.values())


def load(paths: Iterable[str], actions: Mapping[str, ActionSpec], max_age: float | None = None,
         allow_empty: bool = False, reporters: Mapping[str, ActionSpec] | None = None) -> list[Rule]:
    """Every rule in ``paths``, compiled against ``actions`` (the plug-in catalog's); all or nothing.

    ``max_age``: the bus's ``max_age``; a rule whose runs could wait longer is refused.
    ``allow_empty`` (``rules.allow_empty``): accept a file without rules, or no files at all;
    otherwise an emptied file (a truncated write, a botched ConfigMap) is refused rather than
    silently turning every rule off. Runs anywhere: ``serve`` reloads on a worker thread.
    """
    rules: dict[str, Rule] = {}
    files = expand(paths)
    if not files and not allow_empty:
        raise errors.RuleError("no rule files found (set rules.allow_empty: true to run without rules)",
                               file=", ".join(paths))
    for path in files:
        file = os.fspath(path)
        try:
            documents = yamlfile.documents(path.read_bytes())
        except errors.RuleError as exc:
            raise errors.RuleError(exc.message, file=file) from exc
        except OSError as exc:
            raise errors.RuleError(f"cannot read: {exc.strerror}", file=file) from exc
        if not documents and not allow_empty:
            raise errors.RuleError("the file has no rules (set rules.allow_empty: true to allow that)", file=file)
        for index, doc in enumerate(documents):
            rule = compile_document(doc, file, index, actions, max_age, reporters=reporters)
            if rule.name in rules:
                raise errors.RuleError(f"duplicate rule name, first defined in {rules[rule.name].file}",
                                       file=file, rule=rule.name, field="metadata.name")
            rules[rule.name] = rule
    return list(rules.values())
