"""CloudEvent validation and the timestamp and purl spellings of senders."""

from __future__ import annotations

import pytest

from router import errors
from router.model import cdevents, events


@pytest.mark.parametrize("attributes,field", [
    ({"id": "1", "source": "/s"}, "type"),
    ({"id": "", "source": "/s", "type": "t"}, "id"),
    ({"id": "1", "source": "/s", "type": "t", "specversion": "0.3"}, "specversion"),
    ({"id": "1", "source": "/s", "type": "t", "Bad-Name": "x"}, "Bad-Name"),
    ({"id": "1", "source": "/s", "type": "t", "time": "yesterday"}, "time"),
    ({"id": "1", "source": "/s", "type": "t", "subject": 5}, "subject"),
    ({"id": "1", "source": "/s", "type": "t", "big": 2**31}, "big"),
])
def test_invalid_attributes_name_the_field(attributes, field):
    with pytest.raises(errors.BadRequest) as caught:
        events.make(attributes)
    assert caught.value.field == field


@pytest.mark.parametrize("given,expected", [
    ("2019-05-15T15:20:30-07:00", "2019-05-15T15:20:30-07:00"),
    ("2020-10-05T16:33:49Z", "2020-10-05T16:33:49Z"),
    ("2016-08-12 15:23:28 UTC", "2016-08-12T15:23:28Z"),
    ("2021-04-28 21:50:00 +0200", "2021-04-28T21:50:00+02:00"),
    ("0001-01-01T00:00:00Z", None),  # GitHub's "no time" placeholder
    ("2020-10-05T16:33:49", None),  # no zone: ambiguous
    ("soon", None),
    (None, None),
])
def test_rfc3339(given, expected):
    assert events.rfc3339(given) == expected


def test_oci_purl_lowercases_and_encodes_qualifiers():
    digest = "sha256:" + "a" * 64
    assert cdevents.oci_purl("GHCR.io/Org/App", digest, "v1+build") == (
        f"pkg:oci/app@{digest}?repository_url=ghcr.io/org/app&tag=v1%2Bbuild")
