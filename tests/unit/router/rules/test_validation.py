"""``validation.check``: every problem of a rule file, each at the line and column it was written."""

from __future__ import annotations

import pytest

from router.plugins import catalog
from router.rules import validation, yamlfile

EXEC = "  action: {exec: {command: [echo]}}\n"
HEAD = "kind: TriggerRule\nmetadata: {name: r}\nspec:\n"

# (file text, every problem as "line:column field: message fragment", in order)
PROBLEMS = {
    "valid": (HEAD + EXEC, []),
    "two bad filters, both": (HEAD + "  filters:\n    - regex: {}\n    - exact: {type: ''}\n" + EXEC,
                              ["5:7 spec.filters[0].regex: unknown filter dialect",
                               "6:15 spec.filters[1].exact.type: must be a non-empty string"]),
    "a bad filter and a bad action": (HEAD + "  filters: [{cel: ''}]\n  action: {nosuch: {}}\n",
                                      ["4:14 spec.filters[0].cel: a CEL expression must be a non-empty string",
                                       "5:12 spec.action.nosuch: unknown action 'nosuch'"]),
    "every parameter error": (HEAD + "  action:\n    exec:\n      command: echo\n      nope: 1\n",
                              ["6:7 spec.action.exec.command: Input should be a valid list",
                               "7:7 spec.action.exec.nope: unknown field"]),
    "every schema error": ("kind: Rule\nmetadata: {name: A}\nspec: {}\n",
                           ["1:1 kind: Input should be 'TriggerRule'",
                            "2:12 metadata.name: String should match pattern",
                            "3:1 spec.action: Field required"]),
    "a schema error, and a bad filter, report and parameter beside it": (
        HEAD + "  filters: [{regex: {}}]\n  action: {exec: {nope: 1}}\n  report: [{nosuch: {}}]\n"
               "  policy: {timeout: soon}\n",
        ["4:14 spec.filters[0].regex: unknown filter dialect", "5:12 spec.action.exec.command: Field required",
         "5:19 spec.action.exec.nope: unknown field", "6:13 spec.report[0].nosuch: unknown reporter",
         "7:12 spec.policy.timeout: not a duration"]),
    "a duplicate name in the same file": (HEAD + EXEC + "---\n" + HEAD + EXEC,
                                          ["7:12 metadata.name: duplicate rule name"]),
    "not YAML": (HEAD + "  filters: [\n", ["5:1 : not valid YAML"]),
    "a key twice": (HEAD + EXEC + EXEC, ["5:3 : key 'action' appears twice"]),
    "empty": ("", [" : the file has no rules"]),
}


def problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    plugins = catalog.load()
    checked = validation.check([str(path)], plugins.actions, 7 * 86400.0, False, plugins.reporters)
    assert all(p.file == str(path) for p in checked.problems)
    return [(f"{p.line}:{p.column} " if p.line else " ") + f"{p.field}: {p.message}" for p in checked.problems]


@pytest.mark.parametrize(("text", "expected"), PROBLEMS.values(), ids=PROBLEMS.keys())
def test_every_problem_at_its_place(tmp_path, text, expected):
    found = problems(tmp_path, text)
    assert len(found) == len(expected), found
    for line, fragment in zip(found, expected):
        position_and_field, _, message = fragment.partition(": ")
        assert line.startswith(position_and_field + ": ") and message in line, (line, fragment)


def test_the_valid_rules_are_returned_only_when_nothing_is_wrong(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + EXEC)
    plugins = catalog.load()
    checked = validation.check([str(path)], plugins.actions)
    assert [r.name for r in checked.rules] == ["r"] and checked.files == 1 and not checked.problems


# (field path, where it is reported: its own key, else the nearest ancestor that was written)
POSITIONS = {
    "a key": ("spec.action", (4, 3)),
    "a nested key": ("spec.action.exec.command", (4, 19)),
    "a list item": ("spec.filters[1]", (7, 7)),
    "a key inside a list item": ("spec.filters[0].exact.type", (6, 15)),
    "a missing key: its section": ("spec.policy", (3, 1)),
    "a missing item: its list": ("spec.filters[9].cel", (5, 3)),
    "the document": ("", (1, 1)),
}


@pytest.mark.parametrize(("field", "where"), POSITIONS.values(), ids=POSITIONS.keys())
def test_positions_of_field_paths(field, where):
    text = HEAD + "  action: {exec: {command: [echo]}}\n  filters:\n    - exact: {type: a}\n    - cel: 'true'\n"
    (doc, positions), = yamlfile.located(text.encode())
    assert yamlfile.position(positions, field) == where
