"""No secret leaves the process: one full ``serve`` run with every kind of secret configured, scanned.

``serve`` runs as users run it (a subprocess, an external NATS with a user and password in the
URL), with GitHub secrets, a GitLab token, registry webhook tokens (in the path and in a header),
registry pull passwords, ``/events`` bearer tokens and NATS credentials as fields and in the URL,
several of them from ``_file`` settings. Good and bad requests of every kind are sent (accepted,
refused with 401/403/400, unknown source 404, an oversized ``Authorization`` header, 503 while the
registry or NATS is unreachable), a rule runs an action, and ``config check`` and a client command
run too. Then everything the world can see is searched for every secret: the processes' stdout
and stderr, every HTTP answer (status line, headers, body), and every message of every stream on
the server (events, outcomes, dead letters, runs, KV buckets).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import nats
import pytest

from tests.conftest import SHARED
from tests.support import processes, routers
from tests.support.natsserver import NatsServer
from tests.support.ports import free_ports

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"
SECRETS = {
    "github (old)": "gh-secret-old-a1b2c3",
    "github": "gh-secret-new-d4e5f6",
    "gitlab": "gl-token-g7h8i9",
    "dockerhub path token": "dh-path-token-j1k2",
    "dockerhub password": "dh-password-w3x4",
    "quay path token": "quay-path-token-l3m4",
    "quay password": "quay-password-n5o6",
    "harbor header": "harbor-auth-p7q8",
    "gar path token": "gar-path-token-y5z6",
    "events token (old)": "events-token-old-b7c8",
    "events token": "events-token-new-d9e0",
    "events client token": "events-client-f1g2",
    "nats url password": "nats-url-pw-r9s0",
    "nats field password": "nats-field-pw-t1u2",
}
URL_USER, FIELD_USER = "scan-url-user", "scan-field-user"
DEPLOY_TYPE = "com.example.deploy"


def nats_config(path: Path) -> Path:
    """Two users, so that both the URL's credentials and the fields' are real ones."""
    path.write_text("authorization { users = [\n"
                    f'  {{user: "{URL_USER}", password: "{SECRETS["nats url password"]}"}}\n'
                    f'  {{user: "{FIELD_USER}", password: "{SECRETS["nats field password"]}"}}\n]}}\n')
    return path


def environment(tmp_path: Path, nats_port: int, http_port: int, closed_port: int) -> dict[str, str]:
    files = {"github": [SECRETS["github (old)"], SECRETS["github"]],
             "events": [SECRETS["events token (old)"], SECRETS["events token"]],
             "quay-password": [SECRETS["quay password"]]}
    for name, lines in files.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    rule = routers.exec_rule(tmp_path, tmp_path / "exec.log", event_type=DEPLOY_TYPE)
    unreachable = f"http://127.0.0.1:{closed_port}"
    settings = {
        "NATS__URL": f"nats://{URL_USER}:{SECRETS['nats url password']}@127.0.0.1:{nats_port}",
        "NATS__USER": FIELD_USER, "NATS__PASSWORD": SECRETS["nats field password"],
        "NATS__CONNECT_TIMEOUT": "1s", "NATS__PUBLISH_TIMEOUT": "1s",
        "HTTP__HOST": "127.0.0.1", "HTTP__PORT": str(http_port), "HTTP__RETRY_AFTER": "1",
        "EVENTS_AUTH__REQUIRED": "true",
        "EVENTS_AUTH__TOKENS_FILE": str(tmp_path / "events"),
        "EVENTS_AUTH__CLIENTS": json.dumps([{"name": "ci", "tokens": [SECRETS["events client token"]],
                                             "types": ["com.example."]}]),
        "GITHUB__SECRETS_FILE": str(tmp_path / "github"),
        "GITLAB__TOKENS": json.dumps([SECRETS["gitlab"]]),
        "REGISTRIES__RESOLVE_ATTEMPTS": "1", "REGISTRIES__RESOLVE_TIMEOUT": "1s",
        "REGISTRIES__DOCKERHUB__SECRETS": json.dumps([SECRETS["dockerhub path token"]]),
        "REGISTRIES__DOCKERHUB__API_URL": unreachable, "REGISTRIES__DOCKERHUB__USERNAME": "puller",
        "REGISTRIES__DOCKERHUB__PASSWORD": SECRETS["dockerhub password"],
        "REGISTRIES__QUAY__SECRETS": json.dumps([SECRETS["quay path token"]]),
        "REGISTRIES__QUAY__API_URL": unreachable, "REGISTRIES__QUAY__USERNAME": "puller",
        "REGISTRIES__QUAY__PASSWORD_FILE": str(tmp_path / "quay-password"),
        "REGISTRIES__HARBOR__SECRETS": json.dumps([SECRETS["harbor header"]]),
        "REGISTRIES__GAR__SECRETS": json.dumps([SECRETS["gar path token"]]),
        "RULES__PATHS": json.dumps([rule]),
        "STATE_DIR": str(tmp_path / "state"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_ROUTER_")}
    env.update({f"TRIGGER_ROUTER_{k}": v for k, v in settings.items()})
    return env


class Seen:
    """Everything the outside world got to see, by where it was seen."""

    def __init__(self) -> None:
        self.places: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        self.places.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def leaks(self) -> list[str]:
        return [f"{name} in {where}" for where, text in self.places for name, secret in SECRETS.items()
                if secret in text]


async def request(http: aiohttp.ClientSession, seen: Seen, label: str, method: str, url: str, **kwargs) -> int:
    async with http.request(method, url, **kwargs) as response:
        body = await response.read()
        head = f"{response.status} {response.reason}\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        seen.add(f"answer to {label}", head + "\n\n" + body.decode("utf-8", "replace"))
        return response.status


async def wait_ready(http: aiohttp.ClientSession, base: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited"
        try:
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("serve did not become ready")


async def scan_streams(url: str, seen: Seen) -> dict[str, int]:
    """Every message of every stream (headers and data) into ``seen``; message counts by stream."""
    nc = await nats.connect(url)
    counts = {}
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name, total = info.config.name, info.state.messages
            counts[name] = total
            if not total:
                continue
            sub = await js.subscribe(">", ordered_consumer=True, stream=name)
            for _ in range(total):
                msg = await sub.next_msg(timeout=5)
                seen.add(f"stream {name} ({msg.subject})", f"{msg.subject} {msg.headers} ".encode() + msg.data)
            await sub.unsubscribe()
    finally:
        await nc.close()
    return counts


async def tap(url: str, seen: Seen, subjects: set[str]):
    """Every message published on the server while the run lasts (streams that remove what was
    consumed, such as the runs work queue, are empty by the end)."""
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)

    async def heard(msg) -> None:
        subjects.add(msg.subject)
        seen.add(f"published on {msg.subject}", f"{msg.subject} {msg.headers} ".encode() + msg.data)

    await nc.subscribe(">", cb=heard)
    return nc


def signed(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def outcome_stored(url: str, timeout: float = 30) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while (await js.stream_info("TR_OUTCOMES")).state.messages < 2:  # started + finished
            assert time.monotonic() < deadline, "the rule's run produced no outcome"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def send_everything(http, seen: Seen, base: str) -> None:
    events_auth = {"Content-Type": "application/cloudevents+json"}
    deploy = {"specversion": "1.0", "id": "scan-1", "source": "/ci/scan", "type": DEPLOY_TYPE, "data": {"sleep": 0}}
    forged = {"specversion": "1.0", "id": "forged", "source": "https://github.com/acme/web", "type": "com.github.push"}
    bearer = lambda name: {**events_auth, "Authorization": f"Bearer {SECRETS[name]}"}  # noqa: E731
    assert await request(http, seen, "event (token)", "POST", f"{base}/events", data=json.dumps(deploy),
                         headers=bearer("events token")) == 202
    assert await request(http, seen, "event (old token)", "POST", f"{base}/events",
                         data=json.dumps({**deploy, "id": "scan-2"}), headers=bearer("events token (old)")) == 202
    assert await request(http, seen, "forged push, no token", "POST", f"{base}/events", data=json.dumps(forged),
                         headers=events_auth) == 401
    assert await request(http, seen, "forged push, client token", "POST", f"{base}/events", data=json.dumps(forged),
                         headers=bearer("events client token")) == 403
    assert await request(http, seen, "event, wrong token", "POST", f"{base}/events", data=json.dumps(deploy),
                         headers={**events_auth, "Authorization": "Bearer wrong"}) == 401
    oversized = {**events_auth, "Authorization": f"Bearer {SECRETS['events token']}" + "x" * 9000}
    status = await request(http, seen, "oversized Authorization", "POST", f"{base}/events", data=b"{}",
                           headers=oversized)
    assert 400 <= status < 500

    push = (SHARED / "fixtures" / "github" / "push" / "payload.json").read_bytes()
    github = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "scan-gh-1"}
    assert await request(http, seen, "github push", "POST", f"{base}/webhooks/github", data=push,
                         headers={**github, "X-Hub-Signature-256": signed(push, SECRETS["github"])}) == 202
    assert await request(http, seen, "github, bad signature", "POST", f"{base}/webhooks/github", data=push,
                         headers={**github, "X-Hub-Signature-256": signed(push, "not-it")}) == 401
    gitlab = {"Content-Type": "application/json", "X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "scan-gl-1"}
    gitlab_push = (SHARED / "fixtures" / "gitlab" / "push.json").read_bytes()
    assert await request(http, seen, "gitlab push", "POST", f"{base}/webhooks/gitlab", data=gitlab_push,
                         headers={**gitlab, "X-Gitlab-Token": SECRETS["gitlab"]}) == 202
    assert await request(http, seen, "gitlab, bad token", "POST", f"{base}/webhooks/gitlab", data=gitlab_push,
                         headers={**gitlab, "X-Gitlab-Token": "nope"}) == 401

    json_type = {"Content-Type": "application/json"}
    for source, fixture in (("dockerhub", "dockerhub/push.json"), ("quay", "quay/push.json")):
        token = SECRETS[f"{source} path token"]
        body = (FIXTURES / fixture).read_bytes()
        assert await request(http, seen, f"{source} (registry unreachable)", "POST",
                             f"{base}/webhooks/{source}/{token}", data=body, headers=json_type) == 503
        assert await request(http, seen, f"{source}, bad body", "POST", f"{base}/webhooks/{source}/{token}",
                             data=b"{not json", headers=json_type) == 400
        assert await request(http, seen, f"{source}, wrong token", "POST", f"{base}/webhooks/{source}/wrong",
                             data=body, headers=json_type) == 401
        assert await request(http, seen, f"{source} token as a source name", "POST", f"{base}/webhooks/{token}",
                             data=body, headers=json_type) == 404
        assert await request(http, seen, f"{source} token as a source name, with a token", "POST",
                             f"{base}/webhooks/{token}/{token}", data=body, headers=json_type) == 404
    gar_token = SECRETS["gar path token"]
    gar = (FIXTURES / "gar" / "pubsub-push.json").read_bytes()
    assert await request(http, seen, "gar push", "POST", f"{base}/webhooks/gar/{gar_token}", data=gar,
                         headers=json_type) == 202
    assert await request(http, seen, "gar, bad body", "POST", f"{base}/webhooks/gar/{gar_token}", data=b"[]",
                         headers=json_type) == 400
    harbor = (FIXTURES / "harbor" / "push_artifact.json").read_bytes()
    assert await request(http, seen, "harbor push", "POST", f"{base}/webhooks/harbor", data=harbor,
                         headers={**json_type, "Authorization": SECRETS["harbor header"]}) == 202
    assert await request(http, seen, "harbor, wrong secret", "POST", f"{base}/webhooks/harbor", data=harbor,
                         headers={**json_type, "Authorization": "wrong"}) == 401


def cli(args: list[str], env: dict[str, str], seen: Seen) -> int:
    done = subprocess.run([sys.executable, "-m", "router.cli", *args], env=env, capture_output=True, timeout=60)
    seen.add(f"stdout of {' '.join(args)}", done.stdout)
    seen.add(f"stderr of {' '.join(args)}", done.stderr)
    return done.returncode


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_secret_is_logged_answered_or_stored(tmp_path, log_format):
    server = NatsServer(tmp_path / "js", "-c", str(nats_config(tmp_path / "nats.conf"))).start()
    http_port, closed_port = free_ports(2)
    env = environment(tmp_path, server.port, http_port, closed_port)
    env["TRIGGER_ROUTER_LOG__FORMAT"] = log_format  # JSON lines carry fields (run_id, delivery...) besides the message
    admin_url = f"nats://{URL_USER}:{SECRETS['nats url password']}@127.0.0.1:{server.port}"
    seen = Seen()
    assert cli(["config", "check"], env, seen) == 0
    serve_log = tmp_path / "serve.log"
    with open(serve_log, "wb") as log:
        process = subprocess.Popen([*routers.CLI], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{http_port}"
    subjects: set[str] = set()
    listener = await tap(admin_url, seen, subjects)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, process)
            await send_everything(http, seen, base)
            await outcome_stored(admin_url)
            server.stop()  # NATS away: ingest answers 503, the bus logs that it cannot reach NATS
            assert await request(http, seen, "event while NATS is down", "POST", f"{base}/events",
                                 data=json.dumps({"specversion": "1.0", "id": "down-1", "source": "/s",
                                                  "type": DEPLOY_TYPE}),
                                 headers={"Content-Type": "application/cloudevents+json",
                                          "Authorization": f"Bearer {SECRETS['events token']}"}) == 503
            token = SECRETS["dockerhub path token"]
            assert await request(http, seen, "dockerhub while NATS is down", "POST",
                                 f"{base}/webhooks/dockerhub/{token}", data=b"{not json",
                                 headers={"Content-Type": "application/json"}) in (400, 503)
            assert cli(["runs", "list"], env, seen) == 2  # a client that cannot connect says so in one line
            deadline = time.monotonic() + 20  # the reconnect attempts must be logged before NATS returns
            while b"cannot reach NATS at" not in serve_log.read_bytes():
                assert time.monotonic() < deadline, "serve never logged that it cannot reach NATS"
                await asyncio.sleep(0.1)
            server.start()
            await wait_ready(http, base, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        processes.stop_group(process)
        await listener.drain()
    counts = await scan_streams(admin_url, seen)
    server.stop()
    log_text = serve_log.read_text(errors="replace")
    seen.add("serve's output", log_text)

    # The scan saw what it should have: stored events, outcomes, runs; refusals logged with masked paths.
    assert counts["TR_EVENTS"] >= 5 and counts["TR_OUTCOMES"] >= 2
    assert any(subject.startswith("tr.runs.") for subject in subjects), sorted(subjects)[:20]
    assert "/webhooks/dockerhub/***" in log_text and "cannot reach NATS at" in log_text
    assert not seen.leaks()
