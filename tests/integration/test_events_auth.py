"""``POST /events`` authentication against the real edge and a real nats-server (README, "Authenticating /events").

Every refusal is checked on the stream as well as in the answer: a 401 or 403 must leave nothing
stored, and no answer may contain a token.
"""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from tests.integration.conftest import make_settings, serve_edge

OLD, NEW = "events-token-old-4f1c9b", "events-token-new-7d2e0a"
MIRROR = "mirror-token-93ab77"
TEKTON = "tekton-token-5e61d0"
CLIENTS = json.dumps([
    {"name": "mirror", "tokens": [MIRROR], "types": ["com.github."], "sources": ["https://github.com/acme/"]},
    {"name": "tekton", "tokens": [TEKTON], "types": ["dev.cdevents.pipelinerun."]},
])
FORGED_PUSH = {"specversion": "1.0", "id": "forged-1", "source": "https://github.com/acme/web",
               "type": "com.github.push", "data": {"ref": "refs/heads/main"}}
DEPLOY = {"specversion": "1.0", "id": "deploy-1", "source": "/ci/example", "type": "com.example.deploy"}


async def stored_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info("TR_EVENTS")).state.messages
    finally:
        await nc.close()


async def post(edge, event, token=None):
    headers = {"Content-Type": "application/cloudevents+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(event), headers=headers)
    return response.status, await response.json()


@pytest.fixture
async def guarded(nats_server, tmp_path):
    """An edge configured to listen beyond loopback, with rotated default tokens from a file and two clients."""
    token_file = tmp_path / "events-tokens"
    token_file.write_text(f"{OLD}\n{NEW}\n")
    settings = make_settings(nats_server.url, HTTP__HOST="0.0.0.0", EVENTS_AUTH__TOKENS_FILE=str(token_file),
                             EVENTS_AUTH__CLIENTS=CLIENTS)
    async with serve_edge(nats_server.url, settings) as served:
        yield served


@pytest.mark.parametrize("token, status, words", [
    (None, 401, "Bearer"),
    ("wrong-token", 401, "not valid"),
    (NEW, 403, "reserved for the github webhook source"),
    (TEKTON, 403, "reserved for the github webhook source"),
])
async def test_a_forged_github_push_is_refused_and_not_stored(guarded, token, status, words):
    answer_status, body = await post(guarded, FORGED_PUSH, token)
    assert answer_status == status
    assert words in body["detail"]
    assert all(secret not in json.dumps(body) for secret in (OLD, NEW, MIRROR, TEKTON, "wrong-token"))
    assert await stored_count(guarded.nats_url) == 0


async def test_a_client_allowed_github_types_may_send_them_from_its_sources_only(guarded):
    assert (await post(guarded, FORGED_PUSH, MIRROR))[0] == 202
    elsewhere = {**FORGED_PUSH, "id": "forged-2", "source": "https://github.com/other/web"}
    status, body = await post(guarded, elsewhere, MIRROR)
    assert (status, body["field"]) == (403, "source") and "'mirror'" in body["detail"]
    assert [e.id for e in await guarded.stored()] == ["forged-1"]


async def test_both_rotated_tokens_from_the_file_are_accepted(guarded):
    assert (await post(guarded, DEPLOY, OLD))[0] == 202
    assert (await post(guarded, {**DEPLOY, "id": "deploy-2"}, NEW))[0] == 202
    assert [e.id for e in await guarded.stored()] == ["deploy-1", "deploy-2"]


async def test_a_batch_with_one_forbidden_event_stores_none_of_it(guarded):
    batch = [{**DEPLOY, "id": f"b-{i}"} for i in range(3)] + [{**FORGED_PUSH, "id": "b-3"}]
    response = await guarded.http.post(f"{guarded.url}/events", data=json.dumps(batch), headers={
        "Content-Type": "application/cloudevents-batch+json", "Authorization": f"Bearer {NEW}"})
    body = await response.json()
    assert response.status == 403 and body["detail"].startswith("event 3: ")
    assert await stored_count(guarded.nats_url) == 0


async def test_beyond_loopback_without_tokens_every_request_is_refused_naming_the_setting(nats_server):
    settings = make_settings(nats_server.url, HTTP__HOST="0.0.0.0")
    async with serve_edge(nats_server.url, settings) as edge:
        status, body = await post(edge, DEPLOY)
        assert status == 401 and "events_auth.tokens" in body["detail"]
        status, _ = await post(edge, DEPLOY, "anything")
        assert status == 401
        assert await stored_count(nats_server.url) == 0


async def test_on_loopback_tokens_are_optional_but_reserved_types_still_need_one(nats_server):
    settings = make_settings(nats_server.url, EVENTS_AUTH__CLIENTS=CLIENTS)
    async with serve_edge(nats_server.url, settings) as edge:
        assert (await post(edge, DEPLOY))[0] == 202
        status, body = await post(edge, FORGED_PUSH)
        assert status == 401 and "reserved" in body["detail"]
        assert (await post(edge, FORGED_PUSH, "not-a-token"))[0] == 401
        assert (await post(edge, FORGED_PUSH, MIRROR))[0] == 202
        assert [e.id for e in await edge.stored()] == ["deploy-1", "forged-1"]


async def test_binary_mode_is_checked_too(guarded):
    headers = {"ce-specversion": "1.0", "ce-id": "bin-forged", "ce-source": "https://github.com/acme/web",
               "ce-type": "com.github.push", "Content-Type": "application/json", "Authorization": f"Bearer {OLD}"}
    response = await guarded.http.post(f"{guarded.url}/events", data=b"{}", headers=headers)
    assert response.status == 403
    assert await stored_count(guarded.nats_url) == 0


async def test_a_401_carries_a_bearer_challenge(guarded):
    response = await guarded.http.post(f"{guarded.url}/events", data=json.dumps(DEPLOY),
                                       headers={"Content-Type": "application/cloudevents+json"})
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer realm=")
    response = await guarded.http.post(f"{guarded.url}/events", data=json.dumps(DEPLOY), headers={
        "Content-Type": "application/cloudevents+json", "Authorization": "Bearer wrong-token"})
    assert response.status == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_an_unauthenticated_request_is_refused_before_its_body_is_read(nats_server):
    """Headers announcing a 900 KiB body, and no body at all: the 401 must come without waiting for
    it (the body timeout is an hour, so an edge that reads first would never answer here)."""
    settings = make_settings(nats_server.url, HTTP__HOST="0.0.0.0", EVENTS_AUTH__TOKENS=json.dumps([OLD]),
                             HTTP__BODY_TIMEOUT="1h")
    async with serve_edge(nats_server.url, settings) as edge:
        host, port = edge.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
                         b"Content-Length: 921600\r\n\r\n")
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 30)
        finally:
            writer.close()
        assert status_line.split()[1] == b"401", status_line
        assert await stored_count(nats_server.url) == 0
