"""The published OpenAPI file, its three errata, and the fields refusals name.

The errata are pinned both ways: the schema as published refuses what the spec itself writes (so
the erratum is needed: if a new version of the file fixes it, the "as published" row fails and the
erratum can go), and the corrected schema still refuses what it should.
"""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from router import errors
from router.subscriptions import schema
from tests.conftest import SHARED

PUBLISHED = SHARED / "specs/cloudevents/subscriptions/subscriptions-openapi.yaml"

# spec.md §3.2.1's example subscription, config left out (its "interval": 5 is not the string the
# schema's config asks for: a third inconsistency, of the example, not the schema).
SPEC_EXAMPLE = {"id": "sub-193-18365", "filters": [{"prefix": {"type": "com.example."}}], "protocol": "HTTP",
                "protocolsettings": {"method": "POST"}, "sink": "http://example.com/event-processor"}

BARE = {"id": "x", "protocol": "HTTP", "sink": "http://s/"}


def as_published(name: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator({**schema.published(), "$ref": f"{schema.SCHEMAS}{name}"})


def test_the_packaged_copy_is_the_published_file():
    assert yaml.safe_load(schema.DEFINITION.read_text()) == yaml.safe_load(PUBLISHED.read_text())
    assert "Apache License 2.0" in schema.DEFINITION.read_text().split("openapi:", 1)[0]


ERRATA = {  # document -> (valid as published, valid corrected)
    "the spec's own example": (SPEC_EXAMPLE, False, True),
    "one exact filter (erratum 1)": ({**SPEC_EXAMPLE, "filters": [{"exact": {"type": "a"}}], "protocolsettings": {}},
                                     False, True),
    "one sql filter (erratum 2)": ({**SPEC_EXAMPLE, "filters": [{"sql": "true"}], "protocolsettings": {}}, False, True),
    "an HTTP setting (erratum 3)": ({**SPEC_EXAMPLE, "filters": [], "protocolsettings": {"headers": {"a": "b"}}},
                                    False, True),
    "no filters, no settings": ({**SPEC_EXAMPLE, "filters": [], "protocolsettings": {}}, False, True),
    "nothing optional": (BARE, True, True),
    # As published even these fail only because every filter does (it matches Filter and SqlFilter).
    "two dialects in one filter": ({**BARE, "filters": [{"exact": {"a": "b"}, "sql": "true"}]}, False, False),
    "an unknown dialect": ({**BARE, "filters": [{"cel": "true"}]}, False, False),
    "an MQTT setting on HTTP": ({**SPEC_EXAMPLE, "protocolsettings": {"topicname": "t"}}, False, False),
}


@pytest.mark.parametrize("document, published, corrected", ERRATA.values(), ids=ERRATA.keys())
def test_errata(document, published, corrected):
    assert as_published("Subscription").is_valid(document) is published
    assert schema.validator("Subscription").is_valid(document) is corrected


BASE = {"protocol": "HTTP", "sink": "http://s/"}
FIELDS = {
    "missing sink": ({"protocol": "HTTP"}, "sink"),
    "missing protocol": ({"sink": "http://s/"}, "protocol"),
    "protocol not in the enum": ({**BASE, "protocol": "http"}, "protocol"),
    "sink not a string": ({**BASE, "sink": 1}, "sink"),
    "types not an array": ({**BASE, "types": "a"}, "types"),
    "types entry not a string": ({**BASE, "types": ["a", 2]}, "types[1]"),
    "config value not a string": ({**BASE, "config": {"a": 1}}, "config.a"),
    "sql not a string": ({**BASE, "filters": [{"sql": 1}]}, "filters[0].sql"),
    "exact value not a string": ({**BASE, "filters": [{"exact": {"type": 1}}]}, "filters[0].exact.type"),
    "nested in all": ({**BASE, "filters": [{"all": [{"prefix": {"type": []}}]}]}, "filters[0].all[0].prefix.type"),
    "nested in not": ({**BASE, "filters": [{"not": {"suffix": {"subject": 1}}}]}, "filters[0].not.suffix.subject"),
    "any empty": ({**BASE, "filters": [{"any": []}]}, "filters[0].any"),
    "unknown dialect": ({**BASE, "filters": [{"regex": "x"}]}, "filters[0].regex"),
    "no dialect": ({**BASE, "filters": [{}]}, "filters[0]"),
    "a filter that is not an object": ({**BASE, "filters": ["exact"]}, "filters[0]"),
    "method not a string": ({**BASE, "protocolsettings": {"method": 1}}, "protocolsettings.method"),
    "header not a string": ({**BASE, "protocolsettings": {"headers": {"X": 1}}}, "protocolsettings.headers.X"),
    "unknown setting": ({**BASE, "protocolsettings": {"qos": 1}}, "protocolsettings.qos"),
}


@pytest.mark.parametrize("document, field", FIELDS.values(), ids=FIELDS.keys())
def test_refusals_name_the_field(document, field):
    with pytest.raises(errors.BadRequest) as refused:
        schema.check(document, "SubscriptionRequest")
    assert refused.value.field == field
    assert refused.value.detail.startswith(f"{field}: ") and "subscriptions-openapi.yaml" in refused.value.detail


def test_an_update_needs_the_id():
    with pytest.raises(errors.BadRequest) as refused:
        schema.check(BASE, "Subscription")
    assert refused.value.field == "id"
    schema.check({**BASE, "id": "x"}, "Subscription")


def test_a_long_value_is_not_echoed_whole():
    with pytest.raises(errors.BadRequest) as refused:
        schema.check({**BASE, "types": "x" * 10_000}, "SubscriptionRequest")
    assert len(refused.value.detail) < schema.DETAIL_CHARS + 100
