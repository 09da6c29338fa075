"""Harbor project webhooks (the "Default" payload format): pushes, and image scan results.

Harbor sends the policy's "Auth Header" value verbatim as ``Authorization``; configure it as
``Bearer <secret>`` (or the bare secret). One notification can list several resources (artifacts) of
one repository; each with a digest becomes its own event. Harbor sends no delivery id: the event id
is derived from (type, ``occur_at``, repository, digest, tag or scan report id).

``SCANNING_COMPLETED`` / ``SCANNING_FAILED`` become ``io.goharbor.scanning_completed`` /
``scanning_failed`` with the digest and the vulnerability report's severity counts, so a gate can
require "scanned, no Critical" for the very digest that is deployed (a ``correlate`` rule keyed on
the digest). Other event types (pulls, deletes, stopped scans, quota) are accepted and not published.
"""

from __future__ import annotations

from typing import Iterator

from handlers.sources.registries import push
from handlers.sources.registries import settings as registry_settings
from handlers.sources.registries import webhook_auth
from router import plugins
from router.plugins import Delivery, artifacts, cdevents, event_types, events

SCANS = {"SCANNING_COMPLETED": event_types.HARBOR_SCANNING_COMPLETED,
         "SCANNING_FAILED": event_types.HARBOR_SCANNING_FAILED}
SEVERITIES = ("Critical", "High", "Medium", "Low", "Unknown")
"""Always present in ``counts`` (0 when the report lists none): a filter ``data.counts.Critical == 0``
must not fail on a clean image, whose summary Harbor sends empty."""


@plugins.settings_section("registries.harbor")
class HarborSettings(registry_settings.WebhookSecrets):
    pass


@plugins.webhook_source("harbor")
class HarborSource(webhook_auth.SharedSecretSource):
    name = "harbor"

    async def normalize(self, delivery: Delivery) -> list[events.CloudEvent]:
        payload = push.load_object(delivery)
        kind = push.require(payload, "type")
        if kind in SCANS:
            return self.scans(payload, kind)
        if kind != "PUSH_ARTIFACT":
            return []
        published: list[events.CloudEvent] = []
        for where, repository, digest in _resources(payload):
            tag = push.optional(payload, *where, "tag")
            pushed = artifacts.Push("harbor", repository, digest, tag)
            published += push.events_for(
                pushed, event_type=event_types.HARBOR_PUSH,
                event_id=cdevents.deterministic_id("harbor", kind, str(payload.get("occur_at")),
                                                   pushed.repository, digest, tag or ""),
                payload=payload, time=push.timestamp(payload.get("occur_at")), untagged=self.untagged)
        return published

    def scans(self, payload: dict, kind: str) -> list[events.CloudEvent]:
        published: list[events.CloudEvent] = []
        for where, repository, digest in _resources(payload):
            report = _vulnerability_report(push.optional(payload, *where, "scan_overview", kind=dict) or {})
            data = {"registry": "harbor", "repository": repository, "digest": digest,
                    "tag": push.optional(payload, *where, "tag"), **_summary(report)}
            attributes = {"id": cdevents.deterministic_id("harbor", kind, str(payload.get("occur_at")), repository,
                                                          digest, str(report.get("report_id") or "")),
                          "source": f"https://{repository.lower()}", "type": SCANS[kind], "subject": digest}
            time = push.timestamp(payload.get("occur_at"))
            if time:
                attributes["time"] = time
            published.append(events.make(attributes, {**data, "payload": payload}))
        return published


def _resources(payload: dict) -> Iterator[tuple[tuple, str, str]]:
    """Per entry of ``event_data.resources`` (push and scan events alike): its path in the payload,
    its repository (``<host of resource_url>/<repo_full_name>``) and its checked digest."""
    repo_full_name = push.require(payload, "event_data", "repository", "repo_full_name")
    resources = push.require(payload, "event_data", "resources", kind=list)
    for index in range(len(resources)):
        where = ("event_data", "resources", index)
        digest = push.digest(push.require(payload, *where, "digest"), f"event_data.resources[{index}].digest")
        host = push.require(payload, *where, "resource_url").split("/", 1)[0]
        yield where, f"{host}/{repo_full_name}", digest


def _vulnerability_report(overview: dict) -> dict:
    """The vulnerability report of ``scan_overview`` (keyed by the report's media type)."""
    for media_type, report in overview.items():
        if "vulnerability" in media_type and isinstance(report, dict):
            return report
    return {}


def _summary(report: dict) -> dict:
    summary = report.get("summary") if isinstance(report.get("summary"), dict) else None
    counts = None
    if summary is not None:
        listed = summary.get("summary") if isinstance(summary.get("summary"), dict) else {}
        counts = {**{severity: 0 for severity in SEVERITIES},
                  **{k: v for k, v in listed.items() if isinstance(v, int) and not isinstance(v, bool)}}
    return {"scanStatus": report.get("scan_status"), "severity": report.get("severity") or None,
            "counts": counts, "total": summary.get("total") if summary else None,
            "fixable": summary.get("fixable") if summary else None,
            "scanner": report.get("scanner"), "reportId": report.get("report_id"),
            "startTime": report.get("start_time"), "endTime": report.get("end_time")}
