"""Rule loading: precise errors, filter dialect semantics, dry-run explanations."""

from __future__ import annotations

import textwrap

import pytest

from router import errors
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher

VALID = """
kind: TriggerRule
metadata: {name: web-smoke}
spec:
  filters:
    - exact: {type: com.github.push}
    - prefix: {subject: refs/heads/}
    - cel: 'data.repository.name == "web"'
  action:
    exec:
      command: [echo, "{{ data.after }}"]
"""


def write(tmp_path, text: str, name: str = "rules.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def event(**attributes):
    data = attributes.pop("data", {"repository": {"name": "web"}, "after": "abc123"})
    return events.make({"id": "1", "source": "https://github.com/o/web", "type": "com.github.push",
                        "subject": "refs/heads/main", **attributes}, data)


@pytest.mark.parametrize("spec_text,field,message", [
    ("filters: [{exact: {type: ''}}]\n  action: {exec: {command: [x]}}", "spec.filters[0].exact.type", "non-empty"),
    ("filters: [{regex: {type: x}}]\n  action: {exec: {command: [x]}}", "spec.filters[0].regex", "unknown filter dialect"),
    ("filters: [{cel: 'data.x =='}]\n  action: {exec: {command: [x]}}", "spec.filters[0].cel", "invalid CEL"),
    ("filters: [{sql: \"type = 'a' AND\"}]\n  action: {exec: {command: [x]}}", "spec.filters[0].sql", "invalid CESQL"),
    ("filters: [{any: []}]\n  action: {exec: {command: [x]}}", "spec.filters[0].any", "non-empty list"),
    ("action: {teleport: {}}", "spec.action.teleport", "unknown action"),
    ("action: {exec: {command: [x]}, httpProbe: {checks: []}}", "spec.action", "exactly one action"),
    ("action: {exec: {command: []}}", "spec.action.exec.command", "at least 1"),
    ("action: {exec: {command: [x], shell: true}}", "spec.action.exec.shell", "unknown field"),
    ("action: {httpProbe: {checks: [{url: 'http://x/{{ data.'}]}}", "spec.action.httpProbe.checks[0].url", "unterminated"),
    ("action: {exec: {command: [x]}}\n  policy: {timeout: soon}", "spec.policy.timeout", "not a duration"),
])
def test_errors_name_file_rule_and_field(tmp_path, spec_text, field, message):
    path = write(tmp_path, f"kind: TriggerRule\nmetadata: {{name: broken-rule}}\nspec:\n  {spec_text}\n")
    with pytest.raises(errors.RuleError) as caught:
        rules.load([str(path)], catalog.load().actions)
    assert (caught.value.file, caught.value.rule, caught.value.field) == (str(path), "broken-rule", field)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: rule broken-rule, field {field}: ")


def test_second_document_without_name_is_named_by_position(tmp_path):
    path = write(tmp_path, VALID + "---\nkind: TriggerRule\nmetadata: {}\nspec: {action: {exec: {command: [x]}}}\n")
    with pytest.raises(errors.RuleError) as caught:
        rules.load([str(path)], catalog.load().actions)
    assert caught.value.rule == "#2" and caught.value.field == "metadata.name"


def test_duplicate_names_across_files(tmp_path):
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID, "b.yaml")
    with pytest.raises(errors.RuleError, match="duplicate rule name, first defined in .*a.yaml"):
        rules.load([str(tmp_path)], catalog.load().actions)


@pytest.mark.parametrize("filter_yaml,attributes,expected", [
    # Subscriptions API §3.2.4.1.1: values compare as strings, case-sensitive, attribute must exist.
    ("{exact: {type: com.github.push}}", {}, True),
    ("{exact: {type: com.github.PUSH}}", {}, False),
    ("{exact: {team: payments}}", {"team": "payments"}, True),
    ("{exact: {team: payments}}", {}, False),
    ("{prefix: {type: com.github.}}", {}, True),
    ("{suffix: {subject: /main}}", {}, True),
    ("{suffix: {subject: /dev}}", {}, False),
    ("{all: [{prefix: {type: com.}}, {exact: {subject: refs/heads/main}}]}", {}, True),
    ("{any: [{exact: {type: x}}, {exact: {type: com.github.push}}]}", {}, True),
    ("{not: {exact: {type: com.github.push}}}", {}, False),
    ("{cel: 'event.data.repository.name == \"web\" && type.endsWith(\".push\")'}", {}, True),
    ("{cel: 'data.no.such.field == 1'}", {}, False),  # evaluation error: no match, no exception
    ("{sql: \"type LIKE 'com.github.%' AND EXISTS subject\"}", {}, True),
    ("{sql: \"team = 'payments'\"}", {}, False),  # missing attribute: CESQL error value, no match
])
def test_filter_dialects(tmp_path, filter_yaml, attributes, expected):
    path = write(tmp_path, f"kind: TriggerRule\nmetadata: {{name: r}}\nspec:\n  filters: [{filter_yaml}]\n"
                           "  action: {exec: {command: [x]}}\n")
    [rule] = rules.load([str(path)], catalog.load().actions)
    assert rule.matches(event(**attributes)) is expected


def test_rules_test_explains_the_first_rejecting_filter(tmp_path):
    path = write(tmp_path, VALID)
    matcher = Matcher(rules.load([str(path)], catalog.load().actions))
    [verdict] = matcher.explain(event(subject="refs/tags/v1"))
    assert not verdict.matched
    assert verdict.reason == "spec.filters[1] prefix: subject 'refs/tags/v1' does not start with 'refs/heads/'"
    [rendered] = matcher.match(event())
    assert rendered.render(event())["command"] == ["echo", "abc123"]


def test_index_finds_the_same_rules_as_trying_every_rule(tmp_path):
    docs = []
    for i in range(60):
        kind = i % 3
        filters = [f"{{exact: {{type: t.{i % 7}}}}}", f"{{prefix: {{type: t.{i % 5}}}}}",
                   f"{{cel: 'type.endsWith(\"{i % 4}\")'}}"][kind]
        docs.append(f"kind: TriggerRule\nmetadata: {{name: r{i}}}\nspec:\n  filters: [{filters}]\n"
                    "  action: {exec: {command: [x]}}\n")
    path = write(tmp_path, "---\n".join(docs))
    loaded = rules.load([str(path)], catalog.load().actions)
    matcher = Matcher(loaded)
    for n in range(12):
        probe = event(type=f"t.{n}")
        assert [r.name for r in matcher.match(probe)] == [r.name for r in loaded if r.matches(probe)]
