"""Harbor scan results (fixtures from Harbor's docs, see their README): digest and severity counts."""

from __future__ import annotations

import json

import pytest

from tests.unit.handlers.sources.registries.test_normalizers import FIXTURES, normalize

CLEAN = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"
BROKEN = "sha256:dabea2944dcc2b86482b4f0b0fb62da80e0673e900c46c0e03b45919881a5d84"
TRIVY = {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.37.2"}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / "harbor" / name).read_text())


@pytest.mark.parametrize("name,event_type,digest,expected", [
    ("scanning_completed.json", "io.goharbor.scanning_completed", CLEAN, {
        "scanStatus": "Success", "severity": "None", "total": 0, "fixable": 0,
        "counts": {"Critical": 0, "High": 0, "Medium": 0, "Low": 0, "Unknown": 0}, "scanner": TRIVY,
        "reportId": "af0546c1-67dc-4e9d-927e-372900ead0df",
        "startTime": "2023-04-03T06:12:47Z", "endTime": "2023-04-03T06:12:55Z"}),
    ("scanning_completed_critical.json", "io.goharbor.scanning_completed", CLEAN, {
        "scanStatus": "Success", "severity": "Critical", "total": 3, "fixable": 1,
        "counts": {"Critical": 1, "High": 2, "Medium": 0, "Low": 0, "Unknown": 0}, "scanner": TRIVY,
        "reportId": "0c4f3a8e-5b7d-4e2a-9f61-3d2b8c7a1e90",
        "startTime": "2023-04-03T06:02:47Z", "endTime": "2023-04-03T06:02:55Z"}),
    ("scanning_failed.json", "io.goharbor.scanning_failed", BROKEN, {
        "scanStatus": "Error", "severity": None, "total": None, "fixable": None, "counts": None, "scanner": None,
        "reportId": "a2573415-c727-4723-bc92-376c1d978637",
        "startTime": "2023-04-03T07:11:15Z", "endTime": "2023-04-03T07:11:25Z"}),
])
async def test_scan_webhooks_become_events_with_digest_and_counts(name, event_type, digest, expected):
    payload = fixture(name)
    [event] = await normalize("harbor", payload)
    assert (event.type, event.subject, event.source) == (event_type, digest, "https://localhost/harbor/alpine")
    assert event.attributes["time"] == {"scanning_completed.json": "2023-04-03T06:12:55Z",
                                        "scanning_completed_critical.json": "2023-04-03T06:02:55Z",
                                        "scanning_failed.json": "2023-04-03T07:11:25Z"}[name]
    assert event.json() == {"registry": "harbor", "repository": "localhost/harbor/alpine", "digest": digest,
                            "tag": None, **expected, "payload": payload}


async def test_scan_event_ids_are_pinned_and_differ_by_report():
    # Golden: Harbor retries a notification with the same payload; the id must not change.
    [clean] = await normalize("harbor", fixture("scanning_completed.json"))
    [failed] = await normalize("harbor", fixture("scanning_failed.json"))
    assert (clean.id, failed.id) == ("f504e6ef-21a1-5775-adf4-c4327ae9a2bf", "12986da1-acf1-5c10-ad0a-e2fa043023d7")


async def test_a_stopped_scan_is_accepted_and_not_published():
    payload = {**fixture("scanning_failed.json"), "type": "SCANNING_STOPPED"}
    assert await normalize("harbor", payload) == []
