"""The filter dialects (exact, prefix, suffix, all, any, not, cel, sql), each driven by a table.

Every rule's ``filters`` list is built from these, so a mistake here misroutes events silently, and
``rules test`` prints ``why_not`` to users verbatim, and the matcher indexes rules by
``pinned()`` / ``prefixes()``. Expected values are written by hand from the Subscriptions API, the
README and CEL / CESQL semantics.
"""

from __future__ import annotations

import pytest

from router import errors
from router.model import events
from router.rules import filters

BASE = {"id": "1", "source": "https://github.com/acme/web", "type": "com.github.push"}


def event(data=None, **attributes):
    return events.make({**BASE, **attributes}, data)


TYPE_A, TYPE_B = {"exact": {"type": "a"}}, {"exact": {"type": "b"}}

# (expression, extra attributes, data, matches)
MATCHES = {
    "exact equal": ({"exact": {"type": "com.github.push"}}, {}, None, True),
    "exact is case-sensitive": ({"exact": {"type": "com.GitHub.push"}}, {}, None, False),
    "exact attribute names are not folded": ({"exact": {"Type": "com.github.push"}}, {}, None, False),
    "exact is not a substring test": ({"exact": {"type": "com.github"}}, {}, None, False),
    "exact absent attribute": ({"exact": {"subject": "main"}}, {}, None, False),
    "exact string extension": ({"exact": {"myext": "blue"}}, {"myext": "blue"}, None, True),
    "exact integer extension": ({"exact": {"myint": "10"}}, {"myint": 10}, None, True),
    "exact integer is compared as decimal text": ({"exact": {"myint": "010"}}, {"myint": 10}, None, False),
    "exact boolean true is 'true'": ({"exact": {"mybool": "true"}}, {"mybool": True}, None, True),
    "exact boolean is not 'True'": ({"exact": {"mybool": "True"}}, {"mybool": True}, None, False),
    "exact boolean false": ({"exact": {"mybool": "false"}}, {"mybool": False}, None, True),
    "exact boolean is not '1'": ({"exact": {"mybool": "1"}}, {"mybool": True}, None, False),
    "exact every key must match": ({"exact": {"type": "com.github.push", "subject": "main"}},
                                   {"subject": "dev"}, None, False),
    "exact both keys match": ({"exact": {"type": "com.github.push", "subject": "main"}},
                              {"subject": "main"}, None, True),
    "prefix": ({"prefix": {"type": "com.github."}}, {}, None, True),
    "prefix may be the whole value": ({"prefix": {"type": "com.github.push"}}, {}, None, True),
    "prefix longer than the value": ({"prefix": {"type": "com.github.push.x"}}, {}, None, False),
    "prefix is case-sensitive": ({"prefix": {"type": "Com."}}, {}, None, False),
    "prefix absent attribute": ({"prefix": {"subject": "refs/"}}, {}, None, False),
    "prefix other branch": ({"prefix": {"subject": "refs/heads/"}}, {"subject": "refs/tags/v1"}, None, False),
    "prefix of an integer extension": ({"prefix": {"myint": "1"}}, {"myint": 10}, None, True),
    "prefix of a boolean extension": ({"prefix": {"mybool": "tr"}}, {"mybool": True}, None, True),
    "suffix": ({"suffix": {"type": ".push"}}, {}, None, True),
    "suffix is case-sensitive": ({"suffix": {"type": ".PUSH"}}, {}, None, False),
    "suffix absent attribute": ({"suffix": {"subject": "main"}}, {}, None, False),
    "suffix of an integer extension": ({"suffix": {"myint": "0"}}, {"myint": 10}, None, True),
    "suffix of a negative integer": ({"suffix": {"myint": "-5"}}, {"myint": -5}, None, True),
    "all pass": ({"all": [{"prefix": {"type": "com."}}, {"suffix": {"type": "push"}}]}, {}, None, True),
    "all with one failing": ({"all": [{"prefix": {"type": "com."}}, {"exact": {"subject": "x"}}]}, {}, None, False),
    "any with one passing": ({"any": [TYPE_A, {"suffix": {"type": "push"}}]}, {}, None, True),
    "any with none passing": ({"any": [TYPE_A, TYPE_B]}, {}, None, False),
    "not of a match": ({"not": {"prefix": {"type": "com."}}}, {}, None, False),
    "not of a mismatch": ({"not": TYPE_A}, {}, None, True),
    "not of an absent attribute": ({"not": {"exact": {"subject": "main"}}}, {}, None, True),
    "not not": ({"not": {"not": {"suffix": {"type": "push"}}}}, {}, None, True),
    "nested all/any/not, passing": (
        {"all": [{"any": [TYPE_A, {"exact": {"type": "com.github.push"}}]},
                 {"not": {"prefix": {"subject": "refs/tags/"}}}]},
        {"subject": "refs/heads/main"}, None, True),
    "nested all/any/not, failing in the not": (
        {"all": [{"any": [TYPE_A, {"exact": {"type": "com.github.push"}}]},
                 {"not": {"prefix": {"subject": "refs/tags/"}}}]},
        {"subject": "refs/tags/v1"}, None, False),
    "cel attribute variable": ({"cel": "type == 'com.github.push'"}, {}, None, True),
    "cel is case-sensitive": ({"cel": "type == 'COM.GITHUB.PUSH'"}, {}, None, False),
    "cel event map": ({"cel": "event.type.startsWith('com.')"}, {}, None, True),
    "cel data": ({"cel": 'data.repository.name == "web"'}, {}, {"repository": {"name": "web"}}, True),
    "cel data mismatch": ({"cel": 'data.repository.name == "web"'}, {}, {"repository": {"name": "api"}}, False),
    "cel data is null without data": ({"cel": "data == null"}, {}, None, True),
    "cel integer extension is an int": ({"cel": "myint + 1 == 11"}, {"myint": 10}, None, True),
    "cel boolean extension is a bool": ({"cel": "mybool"}, {"mybool": True}, None, True),
    "cel has() of an absent attribute": ({"cel": "has(event.subject)"}, {}, None, False),
    "cel has() of a present attribute": ({"cel": "has(event.subject)"}, {"subject": "main"}, None, True),
    "cel absent top-level variable is an error": ({"cel": "subject == 'main'"}, {}, None, False),
    "cel missing data key is an error": ({"cel": "data.x == 1"}, {}, {"n": 3}, False),
    "cel non-boolean result": ({"cel": "1"}, {}, None, False),
    "sql equal": ({"sql": "type = 'com.github.push'"}, {}, None, True),
    "sql strings are case-sensitive": ({"sql": "type = 'COM.GITHUB.PUSH'"}, {}, None, False),
    "sql LIKE": ({"sql": "type LIKE 'com.github.%'"}, {}, None, True),
    "sql EXISTS of an absent attribute": ({"sql": "EXISTS subject"}, {}, None, False),
    "sql NOT EXISTS of an absent attribute": ({"sql": "NOT EXISTS subject"}, {}, None, True),
    "sql absent attribute is an error": ({"sql": "subject = 'main'"}, {}, None, False),
    "sql integer extension": ({"sql": "myint = 10"}, {"myint": 10}, None, True),
    "sql integer comparison": ({"sql": "myint > 20"}, {"myint": 10}, None, False),
    "sql boolean extension": ({"sql": "mybool = TRUE"}, {"mybool": True}, None, True),
    "sql non-boolean result": ({"sql": "myint"}, {"myint": 10}, None, False),
    "cesql equal": ({"cesql": "type = 'com.github.push'"}, {}, None, True),
    "cesql LIKE mismatch": ({"cesql": "type LIKE 'com.gitlab.%'"}, {}, None, False),
    "sql sees attributes, not data": ({"sql": "EXISTS data"}, {}, {"n": 3}, False),
}


@pytest.mark.parametrize(("expression", "attributes", "data", "expected"), MATCHES.values(), ids=MATCHES.keys())
def test_matches(expression, attributes, data, expected):
    assert filters.compile(expression, "spec.filters[0]").matches(event(data, **attributes)) is expected


# (expression, extra attributes, data, the sentence ``rules test`` prints)
WHY_NOT = {
    "exact absent": ({"exact": {"subject": "main"}}, {}, None, "exact: attribute 'subject' is absent"),
    "exact mismatch": ({"exact": {"type": "com.github.pull"}}, {}, None,
                       "exact: type 'com.github.push' does not equal 'com.github.pull'"),
    "exact names the first failing key": ({"exact": {"type": "com.github.push", "subject": "main"}},
                                          {"subject": "dev"}, None, "exact: subject 'dev' does not equal 'main'"),
    "exact boolean in canonical form": ({"exact": {"mybool": "True"}}, {"mybool": True}, None,
                                        "exact: mybool 'true' does not equal 'True'"),
    "exact integer in canonical form": ({"exact": {"myint": "11"}}, {"myint": 10}, None,
                                        "exact: myint '10' does not equal '11'"),
    "prefix (README example)": ({"prefix": {"subject": "refs/heads/"}}, {"subject": "refs/tags/v1"}, None,
                                "prefix: subject 'refs/tags/v1' does not start with 'refs/heads/'"),
    "suffix": ({"suffix": {"type": ".pull"}}, {}, None, "suffix: type 'com.github.push' does not end with '.pull'"),
    "all names the failing member": ({"all": [{"prefix": {"type": "com."}}, {"exact": {"subject": "main"}}]}, {},
                                     None, "all[1]: exact: attribute 'subject' is absent"),
    "any lists every member": ({"any": [TYPE_A, {"suffix": {"source": "/api"}}]}, {}, None,
                               "any: none matched (exact: type 'com.github.push' does not equal 'a'; "
                               "suffix: source 'https://github.com/acme/web' does not end with '/api')"),
    "not": ({"not": {"prefix": {"type": "com."}}}, {}, None, "not: the nested filter matched"),
    "nested": ({"all": [{"prefix": {"type": "com."}},
                        {"any": [{"exact": {"subject": "main"}}, {"not": {"suffix": {"type": "push"}}}]}]},
               {}, None, "all[1]: any: none matched (exact: attribute 'subject' is absent; "
                         "not: the nested filter matched)"),
    "cel false": ({"cel": "data.n > 5"}, {}, {"n": 3}, "cel: 'data.n > 5' evaluated to false"),
    "cel non-boolean": ({"cel": "data.n"}, {}, {"n": 3}, "cel: 'data.n' evaluated to 3"),
    "cel has()": ({"cel": "has(event.subject)"}, {}, None, "cel: 'has(event.subject)' evaluated to false"),
    "cel null, spelt as CEL": ({"cel": "data.x"}, {}, {"x": None}, "cel: 'data.x' evaluated to null"),
    "cel string, quoted as CEL": ({"cel": "data.x"}, {}, {"x": "it's"}, "cel: 'data.x' evaluated to \"it's\""),
    "cel list": ({"cel": "data.x"}, {}, {"x": [True, "a"]}, "cel: 'data.x' evaluated to [true, \"a\"]"),
    "cel missing key": ({"cel": "data.x == 1"}, {}, {"n": 3}, "cel: evaluation error: no such key 'x'"),
    "sql false": ({"sql": "type = 'x.y'"}, {}, None, "sql: \"type = 'x.y'\" evaluated to False"),
    "cesql (Knative's name) is sql": ({"cesql": "type = 'x.y'"}, {}, None,
                                      "cesql: \"type = 'x.y'\" evaluated to False"),
    "sql non-boolean": ({"sql": "myint"}, {"myint": 10}, None, "sql: 'myint' evaluated to 10"),
    "sql missing attribute": ({"sql": "subject = 'main'"}, {}, None,
                              "sql: \"subject = 'main'\" failed: missing attribute 'subject' at 1:1"),
    "sql missing attribute, column": ({"sql": "type = 'com.github.push' AND subject = 'main'"}, {}, None,
                                      "sql: \"type = 'com.github.push' AND subject = 'main'\" failed: "
                                      "missing attribute 'subject' at 1:30"),
}


@pytest.mark.parametrize(("expression", "attributes", "data", "sentence"), WHY_NOT.values(), ids=WHY_NOT.keys())
def test_why_not(expression, attributes, data, sentence):
    compiled, rejected = filters.compile(expression, "spec.filters[0]"), event(data, **attributes)
    assert not compiled.matches(rejected)
    assert compiled.why_not(rejected) == sentence


# (expression, pinned(), prefixes() of a rule whose only filter it is: the matcher's index keys)
INDEX = {
    "exact pins every key": ({"exact": {"type": "a", "subject": "main"}}, {"type": {"a"}, "subject": {"main"}}, {}),
    "prefix pins nothing, gives a prefix": ({"prefix": {"type": "com.github."}}, {}, {"type": "com.github."}),
    "suffix gives neither": ({"suffix": {"type": ".push"}}, {}, {}),
    "all merges pins": ({"all": [TYPE_A, {"exact": {"source": "s"}}]}, {"type": {"a"}, "source": {"s"}}, {}),
    "all intersects pins": ({"all": [TYPE_A, {"any": [TYPE_A, TYPE_B]}]}, {"type": {"a"}}, {}),
    "all with contradicting pins": ({"all": [TYPE_A, TYPE_B]}, {"type": set()}, {}),
    "any unites pins": ({"any": [TYPE_A, TYPE_B]}, {"type": {"a", "b"}}, {}),
    "any pins only what every branch pins": ({"any": [{"exact": {"type": "a", "source": "s"}}, TYPE_B]},
                                             {"type": {"a", "b"}}, {}),
    "any with an unpinned branch": ({"any": [TYPE_A, {"cel": "true"}]}, {}, {}),
    "any hides prefixes": ({"any": [{"prefix": {"type": "com."}}]}, {}, {}),
    "not pins nothing": ({"not": TYPE_A}, {}, {}),
    "not hides prefixes": ({"not": {"prefix": {"type": "com."}}}, {}, {}),
    "cel": ({"cel": "type == 'a'"}, {}, {}),
    "sql": ({"sql": "type = 'a'"}, {}, {}),
    "all merges prefixes": ({"all": [{"prefix": {"type": "com."}}, {"prefix": {"subject": "refs/"}}]},
                            {}, {"type": "com.", "subject": "refs/"}),
    "nested all passes prefixes up": ({"all": [{"all": [{"prefix": {"type": "com."}}]}]}, {}, {"type": "com."}),
}


@pytest.mark.parametrize(("expression", "pinned", "prefixes"), INDEX.values(), ids=INDEX.keys())
def test_index_keys(expression, pinned, prefixes):
    assert filters.compile(expression, "spec.filters[0]").pinned() == pinned
    # A rule's filters are always combined by an implicit ``all``, which is what the matcher asks.
    assert filters.compile({"all": [expression]}, "spec.filters").prefixes() == prefixes


F = "spec.filters[0]"
# (expression, RuleError.field, a fragment of RuleError.message)
INVALID = {
    "not an object": ("exact", F, "exactly one dialect key"),
    "no dialect": ({}, F, "exactly one dialect key"),
    "two dialects": ({"exact": {"type": "a"}, "prefix": {"type": "b"}}, F, "exactly one dialect key"),
    "unknown dialect": ({"regex": {"type": "a"}}, f"{F}.regex",
                        "unknown filter dialect 'regex' (known: all, any, cel, cesql, exact, not, prefix, sql, suffix)"),
    "empty value": ({"exact": {"type": ""}}, f"{F}.exact.type", "the value for 'type' must be a non-empty string"),
    "integer value": ({"exact": {"myint": 10}}, f"{F}.exact.myint", "must be a non-empty string"),
    "boolean value": ({"suffix": {"mybool": True}}, f"{F}.suffix.mybool", "must be a non-empty string"),
    "empty map": ({"prefix": {}}, f"{F}.prefix", "prefix takes a map of attribute name to string"),
    "list instead of map": ({"suffix": ["type"]}, f"{F}.suffix", "suffix takes a map"),
    "empty attribute name": ({"exact": {"": "a"}}, f"{F}.exact", "attribute names must be non-empty strings"),
    "empty all": ({"all": []}, f"{F}.all", "all takes a non-empty list of filter expressions"),
    "any of a map": ({"any": TYPE_A}, f"{F}.any", "any takes a non-empty list"),
    "deep in all/any": ({"all": [TYPE_A, {"any": [{"suffix": {"type": ""}}]}]}, f"{F}.all[1].any[0].suffix.type",
                        "must be a non-empty string"),
    "not of a list": ({"not": [TYPE_A]}, f"{F}.not", "exactly one dialect key"),
    "deep in not": ({"not": {"not": {"cel": ""}}}, f"{F}.not.not.cel", "a CEL expression must be a non-empty string"),
    "cel not a string": ({"cel": 42}, f"{F}.cel", "a CEL expression must be a non-empty string"),
    "cel syntax": ({"cel": "data.n >"}, f"{F}.cel", "invalid CEL"),
    "sql empty": ({"sql": ""}, f"{F}.sql", "a CESQL expression must be a non-empty string"),
    "sql blank": ({"sql": "   "}, f"{F}.sql", "a CESQL expression must be a non-empty string"),
    "sql not a string": ({"sql": True}, f"{F}.sql", "a CESQL expression must be a non-empty string"),
    "cesql syntax": ({"cesql": "type ="}, f"{F}.cesql", "invalid CESQL: "),
    "sql syntax": ({"sql": "type ="}, f"{F}.sql", "invalid CESQL: "),
    "sql uppercase attribute": ({"sql": "TYPE = 'a'"}, f"{F}.sql", "attribute names are lowercase"),
    "sql unknown function": ({"sql": "NOSUCHFN(type)"}, f"{F}.sql", "unknown function"),
}


@pytest.mark.parametrize(("expression", "field", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_expressions(expression, field, message):
    with pytest.raises(errors.RuleError) as raised:
        filters.compile(expression, F)
    assert raised.value.field == field
    assert message in raised.value.message
