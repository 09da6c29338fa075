"""GitLab webhooks through the source itself: token checks, the documented payloads, refusals.

Expected types, subjects and times are read off the fixtures by hand (``object_kind`` names the
event; GitLab spells times ``2016-08-12 15:23:28 UTC``); ids are pinned in ``test_stable_ids.py``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from router import errors
from router.config import settings as config
from router.plugins import Delivery, catalog

FIXTURES = Path(__file__).resolve().parents[4].parent / "shared" / "fixtures" / "gitlab"
UUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
QUEUED = "dev.cdevents.pipelinerun.queued.0.3.0"
STARTED = "dev.cdevents.pipelinerun.started.0.3.0"
FINISHED = "dev.cdevents.pipelinerun.finished.0.3.0"
WEB = "https://gitlab.example/acme/web"


def gitlab(tokens: list[str] | None = None):
    env = {"TRIGGER_ROUTER_GITLAB__TOKENS": json.dumps(tokens)} if tokens is not None else {}
    return catalog.load().webhook_sources["gitlab"](config.load(None, env=env))


async def normalize(body: bytes | dict, headers: dict[str, str] | None = None) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"X-Gitlab-Event-UUID": UUID} if headers is None else headers
    result = gitlab().normalize(Delivery(headers, raw, path_token=None))
    return await result if inspect.isawaitable(result) else result


def observed(event) -> tuple:
    return event.type, event.subject, event.attributes.get("time")


@pytest.mark.parametrize("fixture,source,expected", [
    ("push.json", "http://example.com/mike/diaspora",
     [("com.gitlab.push", "refs/heads/master", "2012-01-03T23:36:29+02:00")]),  # the last commit's time
    ("pipeline.json", "http://192.168.64.1:3005/gitlab-org/gitlab-test",
     [("com.gitlab.pipeline", "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "2016-08-12T15:26:29Z"),
      (FINISHED, "31", "2016-08-12T15:26:29Z")]),
    ("deployment.json", "http://10.126.0.2:3000/root/test-deployment-webhooks",
     [("com.gitlab.deployment", "staging", "2021-04-28T21:50:00+02:00")]),
])
async def test_fixture_events(fixture, source, expected):
    published = await normalize((FIXTURES / fixture).read_bytes())
    assert [observed(e) for e in published] == expected
    assert [e.source for e in published] == [source] * len(expected)


async def test_successful_pipeline_is_a_finished_pipelinerun():
    _, finished = await normalize((FIXTURES / "pipeline.json").read_bytes())
    assert finished.json()["subject"] == {
        "id": "31", "source": "http://192.168.64.1:3005/gitlab-org/gitlab-test",
        "content": {"pipelineName": "gitlab-org/gitlab-test", "outcome": "success",
                    "uri": "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31"}}


def pipeline(status: str, **attributes) -> dict:
    return {"object_kind": "pipeline", "project": {"web_url": WEB, "path_with_namespace": "acme/web"},
            "object_attributes": {"id": 9, "sha": "abc", "status": status, **attributes}}


@pytest.mark.parametrize("payload,cdevent_type,content", [
    (pipeline("created"), QUEUED, {}),
    (pipeline("waiting_for_resource"), QUEUED, {}),
    (pipeline("pending"), QUEUED, {}),
    (pipeline("running"), STARTED, {}),
    (pipeline("success"), FINISHED, {"outcome": "success"}),
    (pipeline("failed"), FINISHED, {"outcome": "failure", "errors": "pipeline failed (failed)"}),
    (pipeline("failed", detailed_status="failed with warnings"), FINISHED,
     {"outcome": "failure", "errors": "pipeline failed (failed with warnings)"}),
    (pipeline("canceled"), FINISHED, {"outcome": "cancel", "errors": "pipeline canceled (canceled)"}),
    (pipeline("skipped"), FINISHED, {"outcome": "cancel", "errors": "pipeline skipped (skipped)"}),
    (pipeline("running", name="deploy", url=f"{WEB}/-/pipelines/9/builds"), STARTED,
     {"pipelineName": "deploy", "uri": f"{WEB}/-/pipelines/9/builds"}),
    (pipeline("manual"), None, None),  # a holding state says nothing about delivery
])
async def test_pipeline_statuses(payload, cdevent_type, content):
    published = await normalize(payload)
    assert published[0].type == "com.gitlab.pipeline"
    if cdevent_type is None:
        assert len(published) == 1
        return
    assert (published[1].type, published[1].subject) == (cdevent_type, "9")
    assert published[1].json()["subject"]["content"] == {
        "pipelineName": "acme/web", "uri": f"{WEB}/-/pipelines/9", **content}


@pytest.mark.parametrize("payload,expected", [
    ({"object_kind": "tag_push", "ref": "refs/tags/v1.0.0", "commits": []},
     ("com.gitlab.tag_push", "refs/tags/v1.0.0", None)),
    ({"object_kind": "build", "sha": "abc", "build_finished_at": None, "build_started_at": "2024-05-01 10:00:00 UTC"},
     ("com.gitlab.build", "abc", "2024-05-01T10:00:00Z")),
    ({"object_kind": "release", "tag": "v2", "released_at": "", "created_at": "2024-05-01T10:00:00+02:00"},
     ("com.gitlab.release", "v2", "2024-05-01T10:00:00+02:00")),
    ({"object_kind": "merge_request",
      "object_attributes": {"last_commit": {"id": "def"}, "updated_at": "2024-05-01 08:00:00 UTC"}},
     ("com.gitlab.merge_request", "def", "2024-05-01T08:00:00Z")),
    (pipeline("manual", created_at="2024-05-01 10:00:00 UTC"), ("com.gitlab.pipeline", "abc", "2024-05-01T10:00:00Z")),
    ({"object_kind": "deployment", "environment": "prod", "status_changed_at": "yesterday"},
     ("com.gitlab.deployment", "prod", None)),  # an unreadable time is dropped, not refused
    ({"event_type": "note"}, ("com.gitlab.note", None, None)),  # older payloads: event_type
    ({"object_kind": "push", "ref": 5, "commits": [{"timestamp": 1700000000}]}, ("com.gitlab.push", "5", None)),
])
async def test_subjects_and_times(payload, expected):
    published = await normalize(payload)
    assert observed(published[0]) == expected


@pytest.mark.parametrize("payload,source", [
    ({"project": {"web_url": WEB}, "repository": {"homepage": "http://old.example/web"}}, WEB),
    ({"repository": {"homepage": "http://old.example/web"}}, "http://old.example/web"),
    ({}, "https://gitlab.com"),
])
async def test_source_falls_back_to_repository_then_gitlab(payload, source):
    [event] = await normalize({"object_kind": "push", **payload})
    assert event.source == source


@pytest.mark.parametrize("headers,body,field", [
    ({}, b'{"object_kind": "push"}', "Idempotency-Key"),
    ({"Idempotency-Key": "", "X-Gitlab-Event-UUID": ""}, b'{"object_kind": "push"}', "Idempotency-Key"),
    (None, b"", None),
    (None, b"{not json", None),
    (None, b"[]", None),
    (None, b"null", None),
    (None, b"{}", "object_kind"),
    (None, b'{"object_kind": ""}', "object_kind"),
    (None, b'{"object_kind": 5}', "object_kind"),
    (None, b'{"object_kind": ["push"]}', "object_kind"),
    (None, b'{"object_kind": "push", "project": {"web_url": 5}}', "source"),
])
async def test_refusals_name_the_field(headers, body, field):
    with pytest.raises(errors.BadRequest) as caught:
        await normalize(body, headers)
    assert caught.value.field == field


@pytest.mark.parametrize("tokens,presented,accepted", [
    (["t0ken"], "t0ken", True),
    (["old", "new"], "new", True),  # rotation: any configured token
    (["t0ken"], "t0ken ", False),
    (["t0ken"], "other", False),
    (["t0ken"], "", False),
    (["t0ken"], None, False),
    ([], "t0ken", False),  # nothing configured: nothing is accepted
    (None, "", False),
])
def test_token(tokens, presented, accepted):
    headers = {"X-Gitlab-Token": presented} if presented is not None else {}
    delivery = Delivery(headers, b"{}", path_token=None)
    if accepted:
        assert gitlab(tokens).authenticate(delivery) is None
    else:
        with pytest.raises(errors.Unauthorized):
            gitlab(tokens).authenticate(delivery)


@pytest.mark.parametrize("headers,expected", [
    ({"Idempotency-Key": "k-1", "X-Gitlab-Event-UUID": UUID}, "k-1"),  # kept across GitLab's retries
    ({"X-Gitlab-Event-UUID": UUID}, UUID),
    ({"Idempotency-Key": "", "X-Gitlab-Event-UUID": UUID}, UUID),
    ({}, ""),
])
def test_delivery_id_prefers_the_idempotency_key(headers, expected):
    assert gitlab().delivery_id(Delivery(headers, b"{}")) == expected
