"""A subscription's ``source``, ``types`` and ``filters`` translated to the rule engine's filters.

Expected values are written by hand from the Subscriptions API (§3.2.1 source and types, §3.2.4
filters and dialects) and CESQL v1; each row is a subscription and an event a subscriber could send.
"""

from __future__ import annotations

import pytest

from router import errors
from router.model import events
from router.subscriptions import filtering

PUSH = {"id": "1", "source": "https://github.com/acme/web", "type": "com.github.push", "subject": "refs/heads/main"}


def event(**attributes):
    return events.make({**PUSH, **attributes}, {"n": 1})


def compiled(filters=(), source=None, types=None, max_filters=32):
    return filtering.compile(list(filters), source=source, types=types, max_filters=max_filters)


# (filters, source, types, event attributes, delivered)
TABLE = {
    "no filters: everything": ([], None, None, {}, True),
    "exact": ([{"exact": {"type": "com.github.push"}}], None, None, {}, True),
    "exact is case-sensitive": ([{"exact": {"type": "com.github.PUSH"}}], None, None, {}, False),
    "exact on an absent attribute": ([{"exact": {"dataschema": "x"}}], None, None, {}, False),
    "exact on an extension": ([{"exact": {"team": "web"}}], None, None, {"team": "web"}, True),
    "prefix": ([{"prefix": {"type": "com.github."}}], None, None, {}, True),
    "prefix not matching": ([{"prefix": {"type": "com.gitlab."}}], None, None, {}, False),
    "suffix": ([{"suffix": {"subject": "/main"}}], None, None, {}, True),
    "every attribute of one filter": ([{"exact": {"type": "com.github.push", "subject": "refs/heads/dev"}}],
                                      None, None, {}, False),
    "every filter of the list": ([{"prefix": {"type": "com."}}, {"suffix": {"type": ".pull"}}], None, None, {}, False),
    "all": ([{"all": [{"prefix": {"type": "com."}}, {"suffix": {"type": ".push"}}]}], None, None, {}, True),
    "any": ([{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "com.github.push"}}]}], None, None, {}, True),
    "any none": ([{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}], None, None, {}, False),
    "not": ([{"not": {"exact": {"type": "com.github.push"}}}], None, None, {}, False),
    "not not": ([{"not": {"not": {"exact": {"type": "com.github.push"}}}}], None, None, {}, True),
    "sql true": ([{"sql": "source LIKE '%acme%' AND subject = 'refs/heads/main'"}], None, None, {}, True),
    "sql false": ([{"sql": "type = 'x'"}], None, None, {}, False),
    "sql not boolean": ([{"sql": "'text'"}], None, None, {}, False),
    "sql error (missing attribute)": ([{"sql": "dataschema = 'x'"}], None, None, {}, False),
    "sql on an integer extension": ([{"sql": "attempt > 2"}], None, None, {"attempt": 3}, True),
    "source equal": ([], "https://github.com/acme/web", None, {}, True),
    "source is exact, not a prefix": ([], "https://github.com/acme", None, {}, False),
    "types one of": ([], None, ["com.gitlab.push", "com.github.push"], {}, True),
    "types none of": ([], None, ["com.gitlab.push"], {}, False),
    "source, types and filters together": ([{"suffix": {"subject": "main"}}], "https://github.com/acme/web",
                                           ["com.github.push"], {}, True),
    "types pass, filter fails": ([{"suffix": {"subject": "dev"}}], None, ["com.github.push"], {}, False),
}


@pytest.mark.parametrize("filters, source, types, attributes, delivered", TABLE.values(), ids=TABLE.keys())
def test_translation(filters, source, types, attributes, delivered):
    assert compiled(filters, source, types).matches(event(**attributes)) is delivered


REFUSED = {
    "bad sql": ([{"sql": "type ="}], "filters[0].sql", "invalid CESQL"),
    "unknown sql function": ([{"sql": "NOPE(type) = 'a'"}], "filters[0].sql", "unknown function"),
    "empty sql": ([{"sql": " "}], "filters[0].sql", "non-empty"),
    "cel is the rules' dialect, not the spec's": ([{"cel": "true"}], "filters[0].cel", "unknown filter dialect"),
    "nested unknown": ([{"all": [{"exact": {"a": "b"}}, {"not": {"cel": "x"}}]}], "filters[0].all[1].not.cel",
                       "unknown filter dialect"),
    "empty any": ([{"any": []}], "filters[0].any", "non-empty list"),
    "empty value": ([{"prefix": {"type": ""}}], "filters[0].prefix.type", "non-empty string"),
    "two dialects": ([{"exact": {"a": "b"}, "suffix": {"a": "b"}}], "filters[0]", "exactly one dialect"),
}


@pytest.mark.parametrize("filters, field, said", REFUSED.values(), ids=REFUSED.keys())
def test_refusals_name_the_field(filters, field, said):
    with pytest.raises(errors.BadRequest) as refused:
        compiled(filters)
    assert refused.value.field == field and said in refused.value.detail


def test_the_number_of_expressions_is_bounded_nested_ones_included():
    nested = [{"all": [{"exact": {"type": "a"}}, {"not": {"exact": {"type": "b"}}}]}]
    assert filtering.count(nested) == 4
    assert compiled(nested, max_filters=4).matches(event(type="a"))
    with pytest.raises(errors.PayloadTooLarge) as refused:
        compiled(nested, max_filters=3)
    assert refused.value.limit == "subscriptions.max_filters" and refused.value.field == "filters"
