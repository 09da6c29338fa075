"""``{{ <CEL> }}`` templates in action parameters: how values are typed, formatted and reported.

A template's output becomes a Job field, an argv entry or a concurrency key, so the difference
between ``3`` and ``"3"``, or a template error at load versus at run time, is something users see.
Expected values are written by hand from the README ("Templates") and CEL semantics.
"""

from __future__ import annotations

import pytest

from router import errors
from router.model import events
from router.rules import templates

DATA = {"replicas": 3, "ok": True, "tags": ["a", "b"], "app": {"name": "web", "port": 8080},
        "none": None, "ratio": 0.5, "title": "Hello"}
EVENT = events.make({"id": "1", "source": "https://github.com/acme/web", "type": "com.github.push",
                     "subject": "main", "myint": 10, "mybool": True}, DATA)
PATH = "spec.action.x"

# (tree, rendered) against EVENT
RENDER = {
    # exactly one template: the CEL value's own type
    "int": ("{{ data.replicas }}", 3),
    "bool": ("{{ data.ok }}", True),
    "list": ("{{ data.tags }}", ["a", "b"]),
    "map": ("{{ data.app }}", {"name": "web", "port": 8080}),
    "null": ("{{ data.none }}", None),
    "double": ("{{ data.ratio }}", 0.5),
    "no spaces inside the braces": ("{{data.replicas}}", 3),
    "arithmetic": ("{{ data.replicas + 1 }}", 4),
    "function call": ("{{ size(data.tags) }}", 2),
    "list literal": ("{{ [1, 'x'] }}", [1, "x"]),
    "map literal": ("{{ {'k': data.replicas} }}", {"k": 3}),
    "nested map literal, '}' apart": ("{{ {'a': {'b': 1} } }}", {"a": {"b": 1}}),
    "integer extension as a variable": ("{{ myint }}", 10),
    "boolean extension as a variable": ("{{ mybool }}", True),
    "attribute as a variable": ("{{ type }}", "com.github.push"),
    "attribute through event": ("{{ event.subject }}", "main"),
    "event.data is data": ("{{ event.data.app.name }}", "web"),
    "'{{' inside a CEL string": ("{{ '{{' }}", "{{"),
    # inside longer text: strings as they are, everything else as JSON
    "int in text": ("replicas={{ data.replicas }}", "replicas=3"),
    "leading space makes it text": (" {{ data.replicas }}", " 3"),
    "bool in text": ("{{ data.ok }}!", "true!"),
    "list in text": ("tags: {{ data.tags }}", 'tags: ["a", "b"]'),
    "one-key map in text": ("app={{ {'name': data.app.name} }}", 'app={"name": "web"}'),
    "null in text": ("v={{ data.none }}", "v=null"),
    "double in text": ("r={{ data.ratio }}", "r=0.5"),
    "string in text is not quoted": ("{{ data.title }} world", "Hello world"),
    "two templates": ("{{ type }}/{{ event.subject }}", "com.github.push/main"),
    "two adjacent templates are text": ("{{ data.replicas }}{{ data.replicas }}", "33"),
    "multi-line text": ("a\n{{ data.replicas }}\n", "a\n3\n"),
    # no template: unchanged
    "plain string": ("plain", "plain"),
    "empty string": ("", ""),
    "closing braces only": ("only }} here", "only }} here"),
    "single braces": ("a {b} c", "a {b} c"),
    "integer": (7, 7),
    "boolean": (False, False),
    "None": (None, None),
    "keys are not templates": ({"{{ type }}": "x"}, {"{{ type }}": "x"}),
    # trees
    "nested dicts and lists": ({"a": {"b": ["{{ data.replicas }}", "n={{ myint }}", 5]}, "c": "x"},
                               {"a": {"b": [3, "n=10", 5]}, "c": "x"}),
    "lists of lists": (["{{ data.tags }}", ["{{ mybool }}", "k"]], [["a", "b"], [True, "k"]]),
}


@pytest.mark.parametrize(("tree", "expected"), RENDER.values(), ids=RENDER.keys())
def test_render(tree, expected):
    rendered = templates.Template(tree, PATH).render(EVENT)
    assert rendered == expected
    assert type(rendered) is type(expected)  # 3 is not "3", and True == 1 must not pass for 1


CORRELATED = {"events": {"published": {"type": "dev.cdevents.artifact.published.0.3.0",
                                       "data": {"customData": {"digest": "sha256:abc"}}}}}
# (tree, extra, rendered): a correlated run's templates also see ``events``
EXTRA = {
    "joined event's data": ("{{ events.published.data.customData.digest }}", CORRELATED, "sha256:abc"),
    "joined event's attribute in text": ("t={{ events.published.type }}", CORRELATED,
                                         "t=dev.cdevents.artifact.published.0.3.0"),
    "with the triggering event": ("{{ events.published.data.customData.digest }}@{{ data.app.name }}", CORRELATED,
                                  "sha256:abc@web"),
    "events as a value": ("{{ size(events) }}", CORRELATED, 1),
    "an empty extra changes nothing": ("{{ data.replicas }}", {}, 3),
}


@pytest.mark.parametrize(("tree", "extra", "expected"), EXTRA.values(), ids=EXTRA.keys())
def test_render_with_extra(tree, extra, expected):
    assert templates.Template(tree, PATH).render(EVENT, extra) == expected


def test_each_event_renders_its_own_values():
    template = templates.Template({"app": "{{ data.app.name }}", "sub": "{{ event.subject }}"}, PATH)
    other = events.make({"id": "2", "source": "s", "type": "t", "subject": "dev"}, {"app": {"name": "api"}})
    assert template.render(EVENT) == {"app": "web", "sub": "main"}
    assert template.render(other) == {"app": "api", "sub": "dev"}
    assert template.render(EVENT) == {"app": "web", "sub": "main"}


def test_data_is_null_without_data():
    bare = events.make({"id": "1", "source": "s", "type": "t"})
    assert templates.Template(["{{ data }}", "d={{ data }}"], PATH).render(bare) == [None, "d=null"]


# (tree, path, RuleError.field, a fragment of RuleError.message): refused when rules load
INVALID = {
    "unterminated": ("{{ data.replicas", PATH, PATH, "unterminated '{{' template"),
    "unterminated after a template": ("a {{ type }} {{", PATH, PATH, "unterminated '{{' template"),
    "unterminated deep in a tree": ({"args": ["ok", "{{ x"]}, "spec.action", "spec.action.args[1]",
                                    "unterminated '{{' template"),
    "invalid CEL": ("{{ data. }}", PATH, "spec.action.x (template '{{ data. }}')", "invalid CEL"),
    "empty template": ("{{ }}", PATH, "spec.action.x (template '{{ }}')",
                       "a CEL expression must be a non-empty string"),
    "invalid CEL deep in a tree": ({"env": {"A": "n={{ 1 + }}"}}, "spec.action",
                                   "spec.action.env.A (template '{{ 1 + }}')", "invalid CEL"),
}


@pytest.mark.parametrize(("tree", "path", "field", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_templates(tree, path, field, message):
    with pytest.raises(errors.RuleError) as raised:
        templates.Template(tree, path)
    assert raised.value.field == field
    assert message in raised.value.message


# (tree, the start of the PermanentError's message): refused for one event, when the run renders
FAILURES = {
    "missing key": ("{{ data.missing }}", "template '{{ data.missing }}' failed: no such key 'missing'"),
    "missing key in text": ("id={{ data.app.missing }}", "template 'id={{ data.app.missing }}' failed: "
                                                         "no such key 'missing'"),
    "absent attribute variable": ("{{ event.time }}", "template '{{ event.time }}' failed: no such key 'time'"),
    "events outside a correlated run": ("{{ events.published }}", "template '{{ events.published }}' failed: "),
    "index out of range, deep": ({"a": ["{{ data.tags[5] }}"]}, "template '{{ data.tags[5] }}' failed: "),
    "type error": ("{{ data.title + 1 }}", "template '{{ data.title + 1 }}' failed: "),
}


@pytest.mark.parametrize(("tree", "message"), FAILURES.values(), ids=FAILURES.keys())
def test_render_failures(tree, message):
    template = templates.Template(tree, PATH)  # compiles: the failure depends on the event
    with pytest.raises(errors.PermanentError) as raised:
        template.render(EVENT)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("expression", ["timestamp('2024-01-01T00:00:00Z')", "duration('1s')", "b'ab'"])
def test_unformattable_value_in_text_is_a_permanent_error(expression):
    with pytest.raises(errors.PermanentError, match=r"cannot be written into text; convert it with string"):
        templates.Template(f"at {{{{ {expression} }}}}", PATH).render(EVENT)


def test_a_map_in_text_renders_the_same_for_equal_data():
    template = templates.Template("key={{ data.app }}", PATH)
    app = {"name": "web", "port": 8080, "team": "core", "tier": "gold"}
    rendered = {template.render(events.make({"id": str(i), "source": "s", "type": "t"}, {"app": app}))
                for i in range(10)}
    assert len(rendered) == 1
