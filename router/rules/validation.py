"""Every problem in a set of rule files, each at its line and column: ``rules validate``, ``config check``.

``loading.load`` is all or nothing and stops at the first problem, which is right for ``serve``: it
refuses the set either way. A rule author fixing a file wants the whole list at once, as a compiler
gives it, in the ``file:line:column:`` form editors and CI annotations jump to. So this module
checks what can be checked independently (every file, every document, every schema error of a
document, every filter, every ``spec.report`` entry, every error of the action's parameters) and
then compiles the rule the way ``loading`` does, with the parts already known to be wrong left
out, so the rest (action, environment, policy, correlation) is checked by the same code that
``serve`` runs. Within one filter or one policy only the first problem is found: those stop at it.

Positions come from the YAML node tree (``yamlfile.located``): a field path that was written is
reported where its key is; a missing one at the nearest section that was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from router import errors
from router.rules import filters, loading, schema, yamlfile
from router.rules.loading import ActionSpec, Rule

__all__ = ["Checked", "check", "line"]


@dataclass
class Checked:
    rules: list[Rule] = field(default_factory=list)
    """The rules without problems (the set ``serve`` would load only if ``problems`` is empty)."""
    problems: list[errors.RuleError] = field(default_factory=list)
    files: int = 0


def line(problem: errors.RuleError) -> str:
    """``file:line:column: rule R, field F: message`` (the position left out where none is known)."""
    where = problem.file + (f":{problem.line}:{problem.column}" if problem.line else "")
    what = ", ".join(f"{label} {value}" for label, value in (("rule", problem.rule), ("field", problem.field))
                     if value)
    return ": ".join(part for part in (where, what, problem.message) if part)


def check(paths: Iterable[str], actions: Mapping[str, ActionSpec], max_age: float | None = None,
          allow_empty: bool = False, reporters: Mapping[str, ActionSpec] | None = None) -> Checked:
    """What ``loading.load`` with these arguments would refuse, every problem of it, in file order."""
    paths = list(paths)
    result = Checked()
    usable = []
    for entry in paths:
        try:
            loading.expand([entry])
            usable.append(entry)
        except errors.RuleError as exc:
            result.problems.append(exc)
    files = loading.expand(usable)
    result.files = len(files)
    if not files and not allow_empty and not result.problems:
        result.problems.append(errors.RuleError(
            "no rule files found (set rules.allow_empty: true to run without rules)", file=", ".join(paths)))
    first_file: dict[str, str] = {}
    for path in files:
        file = os.fspath(path)
        try:
            documents = yamlfile.located(path.read_bytes())
        except errors.RuleError as exc:
            result.problems.append(errors.RuleError(exc.message, file=file, line=exc.line, column=exc.column))
            continue
        except OSError as exc:
            result.problems.append(errors.RuleError(f"cannot read: {exc.strerror}", file=file))
            continue
        if not documents and not allow_empty:
            result.problems.append(errors.RuleError("the file has no rules (set rules.allow_empty: true to "
                                                    "allow that)", file=file))
        in_file: list[errors.RuleError] = []
        for index, (doc, positions) in enumerate(documents):
            name, rule, found = _document(doc, file, index, actions, max_age, reporters or {})
            if name is not None and name in first_file:
                found.append(errors.RuleError(f"duplicate rule name, first defined in {first_file[name]}",
                                              file=file, rule=name, field="metadata.name"))
            elif name is not None:
                first_file[name] = file
            if rule is not None and not found:
                result.rules.append(rule)
            for problem in found:
                problem.line, problem.column = yamlfile.position(positions, problem.field)
            in_file += found
        result.problems += sorted(in_file, key=lambda p: (p.line, p.column))
    return result


def _document(doc: Any, file: str, index: int, actions: Mapping[str, ActionSpec], max_age: float | None,
              reporters: Mapping[str, ActionSpec]) -> tuple[str | None, Rule | None, list[errors.RuleError]]:
    """The rule's name (None if the document is not a rule), the rule (None unless it has no
    problem) and every problem found in the document."""
    try:
        parsed = schema.RuleDocument.model_validate(doc)
    except ValidationError as exc:
        name = loading.label(doc, index)
        found = [errors.RuleError(loading.describe(e), file=file, rule=name, field=loading.field_path(e["loc"]))
                 for e in exc.errors()]
        spec = doc.get("spec") if isinstance(doc, dict) else None
        if isinstance(spec, dict):  # the parts the schema leaves to compiling, checked as written
            _parts(found, spec.get("filters"), spec.get("report"), reporters)
            action = spec.get("action")
            if isinstance(action, dict) and len(action) == 1 and next(iter(action)) in actions:
                (verb, raw), = action.items()
                found += loading.parameter_errors(actions[verb].params, raw or {}, f"spec.action.{verb}")
        return None, None, _unique(found, file, name)
    name, spec = parsed.metadata.name, parsed.spec
    found = []
    bad_filters, bad_reports = _parts(found, spec.filters, spec.report, reporters)
    trial = dict(doc)
    trial["spec"] = {**doc["spec"], **({"filters": []} if bad_filters else {}), **({"report": []} if bad_reports else {})}
    rule = None
    try:
        rule = loading.compile_document(trial, file, index, actions, max_age, reporters=reporters)
    except errors.RuleError as exc:
        found += _parameter_errors(exc, spec.action, actions) or [exc]
    unique = _unique(found, file, name)
    return name, (None if unique else rule), unique


def _parts(found: list[errors.RuleError], written_filters: Any, written_reports: Any,
           reporters: Mapping[str, ActionSpec]) -> tuple[bool, bool]:
    """Check every filter and every ``spec.report`` entry on its own; whether any of each failed."""
    written_filters = written_filters if isinstance(written_filters, list) else []
    written_reports = [e for e in written_reports if isinstance(e, dict)] if isinstance(written_reports, list) else []
    return (_each(found, [lambda f=f, i=i: filters.compile(f, f"spec.filters[{i}]")
                          for i, f in enumerate(written_filters)]),
            _each(found, [lambda e=e, i=i: loading.report(e, i, reporters) for i, e in enumerate(written_reports)]))


def _unique(found: list[errors.RuleError], file: str, name: str) -> list[errors.RuleError]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for problem in found:
        if (problem.field, problem.message) not in seen:
            seen.add((problem.field, problem.message))
            unique.append(errors.RuleError(problem.message, file=file, rule=name, field=problem.field))
    return unique


def _each(found: list[errors.RuleError], checks: Iterable[Any]) -> bool:
    """Run every check, collecting its ``RuleError``; whether any failed."""
    failed = False
    for run in checks:
        try:
            run()
        except errors.RuleError as exc:
            found.append(exc)
            failed = True
    return failed


def _parameter_errors(first: errors.RuleError, action: dict[str, Any],
                      actions: Mapping[str, ActionSpec]) -> list[errors.RuleError]:
    """When compiling stopped at the action's parameters: all their errors, not only the first."""
    if len(action) != 1 or next(iter(action)) not in actions:
        return []
    (name, raw), = action.items()
    path = f"spec.action.{name}"
    if not (first.field == path or first.field.startswith(f"{path}.") or first.field.startswith(f"{path}[")):
        return []
    every = loading.parameter_errors(actions[name].params, raw or {}, path)
    return every if any((e.field, e.message) == (first.field, first.message) for e in every) else []
