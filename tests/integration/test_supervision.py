"""Supervision, readiness and recovery of ``serve``, as operators see them: exit status, /readyz, the log.

Real ``serve`` processes against a real nats-server. A background source that cannot start
because of its configuration ends ``serve`` with status 2 and one line; one that fails later is
restarted and named in ``/readyz`` until it recovers; a NATS server that comes back with an empty
store gets its streams, KV buckets and durable consumers back without a restart of the router;
and a NATS server that cannot be reached is said so in the log, with its URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import nats
import pytest

from tests.support import processes

TYPE = "com.example.deployed"
# A background source that does what a file tells it: run ("ok") or fail ("fail"). Written into the
# test's directory and imported before the CLI starts, exactly as a plug-in package import would be.
FLAKY_SOURCE = '''
import asyncio, os
from pathlib import Path
from router import plugins

@plugins.background_source("flaky")
async def run(settings, bus):
    control = Path(os.environ["FLAKY_CONTROL"])
    while True:
        if control.read_text().strip() == "fail":
            raise RuntimeError("the flaky source was told to fail")
        await asyncio.sleep(0.05)
'''


class Serve:
    """One ``trigger-router serve`` process, its HTTP port and its log."""

    def __init__(self, tmp_path: Path, port: int, name: str = "serve", *, nats_url: str | None = None,
                 rules: Path | None = None, plugin: str | None = None, **env: str) -> None:
        self.port = port
        self.log = tmp_path / f"{name}.log"
        environment = {**os.environ, "TRIGGER_ROUTER_HTTP__PORT": str(port),
                       "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / f"{name}-state"),
                       **{f"TRIGGER_ROUTER_{key}": value for key, value in env.items()}}
        if nats_url:
            environment["TRIGGER_ROUTER_NATS__URL"] = nats_url
        if rules:
            environment["TRIGGER_ROUTER_RULES__PATHS"] = json.dumps([str(rules)])
        command = [sys.executable, "-m", "router.cli", "serve"]
        if plugin:
            (tmp_path / "plugin_under_test.py").write_text(plugin)
            command = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                       "import plugin_under_test; from router.cli.main import main; sys.exit(main(['serve']))",
                       str(tmp_path)]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd=Path(__file__).resolve().parents[2])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        processes.stop_group(self.process, grace=30)

    async def readyz(self) -> tuple[int, dict]:
        """(status, body); (0, {}) while nothing listens yet."""
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as answer:
                    return answer.status, await answer.json()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0, {}

    async def post(self, event_id: str) -> int:
        event = {"specversion": "1.0", "id": event_id, "source": "/test", "type": TYPE, "data": {"n": 1}}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/events", data=json.dumps(event),
                                 headers={"Content-Type": "application/cloudevents+json"}) as answer:
                return answer.status


async def eventually(check, what: str, serve: Serve | None = None, timeout: float = 30.0):
    """Poll ``check`` (async, returns a truthy value when done) until it holds or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f}s" +
                        (f"; serve log:\n{serve.text()}" if serve else ""))
        if serve is not None and serve.process.poll() is not None:
            pytest.fail(f"serve exited with {serve.process.returncode} while waiting for {what}:\n{serve.text()}")
        await asyncio.sleep(0.1)


async def ready(serve: Serve, timeout: float = 30.0) -> None:
    async def check():
        return (await serve.readyz())[0] == 200
    await eventually(check, "/readyz answering 200", serve, timeout)


def rule_appending_to(tmp_path: Path, ran: Path) -> Path:
    """A rule whose exec action appends the event id to ``ran``: one line per run executed."""
    command = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')",
               str(ran), "{{ event.id }}"]
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: TriggerRule
        metadata: {{name: append}}
        spec:
          filters: [{{exact: {{type: {TYPE}}}}}]
          action:
            exec:
              command: {json.dumps(command)}
    """))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def has_lines(path: Path, count: int):
    async def check():
        return len(lines(path)) >= count
    return check


def said(serve: Serve, text: str):
    async def check():
        return text in serve.text()
    return check


@pytest.fixture(autouse=True)
def flaky_control(tmp_path, monkeypatch):
    """Where the flaky source reads what to do (inherited by the serve process)."""
    monkeypatch.setenv("FLAKY_CONTROL", str(tmp_path / "control"))


async def test_a_source_with_a_bad_configuration_ends_serve_with_one_line(nats_server, tmp_path, free_port):
    serve = Serve(tmp_path, free_port, nats_url=nats_server.url,
                  KUBERNETES__KUBECONFIG=str(tmp_path / "no-such-kubeconfig"),
                  KUBERNETES__WATCHES='[{"group": "apps", "kind": "Deployment"}]')
    try:
        serve.process.wait(60)
    finally:
        serve.stop()
    output = serve.text()
    assert serve.process.returncode == 2, output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    assert errors[0].startswith("trigger-router: error: source/kubernetes: kubernetes.kubeconfig: "), output
    assert "Traceback" not in output


async def test_a_source_that_fails_later_is_restarted_and_named_in_readyz(nats_server, tmp_path, free_port):
    control = tmp_path / "control"
    control.write_text("ok")
    serve = Serve(tmp_path, free_port, nats_url=nats_server.url, plugin=FLAKY_SOURCE,
                  ROUTER__ENABLED="false")
    try:
        await ready(serve)
        control.write_text("fail")

        async def failing():
            status, body = await serve.readyz()
            return status == 503 and body if "source/flaky" in body.get("failing", {}) else None

        body = await eventually(failing, "/readyz naming the failing source", serve)
        assert "the flaky source was told to fail" in body["failing"]["source/flaky"]
        assert body["missing"] == []
        assert (await serve.readyz())[0] == 503  # it keeps failing on every restart: still not ready
        control.write_text("ok")
        await ready(serve)
        assert (await serve.post("still-ingesting")) == 202
    finally:
        serve.stop()
    log = serve.text()
    assert "source/flaky failed: RuntimeError: the flaky source was told to fail; restarting in" in log
    assert "source/flaky recovered" in log
    assert serve.process.returncode == 0, log


async def test_after_nats_loses_its_store_ingest_and_routing_work_again(nats_server, tmp_path, free_port):
    ran = tmp_path / "ran"
    serve = Serve(tmp_path, free_port, nats_url=nats_server.url, rules=rule_appending_to(tmp_path, ran),
                  ROUTER__ACK_WAIT="5s")
    try:
        await ready(serve)
        assert (await serve.post("before")) == 202
        await eventually(has_lines(ran, 1), "the run of the first event", serve)

        nats_server.stop()
        shutil.rmtree(nats_server.store)  # the server comes back with nothing: no stream, bucket, consumer

        async def unready():
            status, body = await serve.readyz()
            return status == 503 and body
        body = await eventually(unready, "/readyz answering 503", serve)
        assert body["missing"] == ["NATS connection"]
        await eventually(said(serve, f"cannot reach NATS at {nats_server.url}: "),
                         "a log line saying NATS cannot be reached", serve)

        nats_server.start()
        await ready(serve, timeout=60)
        assert (await serve.post("after")) == 202
        await eventually(has_lines(ran, 2), "the run of the event ingested after the store was lost", serve)
    finally:
        serve.stop()
    log = serve.text()
    assert lines(ran) == ["before", "after"], log
    assert "the NATS server had lost" in log and "consumer trigger-router on stream TR_EVENTS" in log, log
    assert "KV bucket TR_RUN_STATE" in log, log


async def test_a_consumer_and_a_bucket_deleted_by_hand_come_back(nats_server, tmp_path, free_port):
    ran = tmp_path / "ran"
    serve = Serve(tmp_path, free_port, nats_url=nats_server.url, rules=rule_appending_to(tmp_path, ran))
    nc = await nats.connect(nats_server.url)
    try:
        await ready(serve)
        js = nc.jetstream()
        await js.delete_consumer("TR_EVENTS", "trigger-router")
        await js.delete_key_value("TR_RUN_STATE")

        async def bucket_missing():
            status, body = await serve.readyz()
            return status == 503 and "KV bucket TR_RUN_STATE" in body["missing"]
        await eventually(bucket_missing, "/readyz naming the deleted bucket", serve)
        await ready(serve)
        assert (await js.consumer_info("TR_EVENTS", "trigger-router")).config.durable_name == "trigger-router"
        assert (await js.stream_info("KV_TR_RUN_STATE")).config.name == "KV_TR_RUN_STATE"
        assert (await serve.post("after-deletion")) == 202
        await eventually(has_lines(ran, 1), "the run of an event ingested after the deletion", serve)
    finally:
        await nc.close()
        serve.stop()
    log = serve.text()
    assert "re-created lost consumer trigger-router on stream TR_EVENTS" in log, log
    assert "re-created KV bucket TR_RUN_STATE" in log, log


async def test_every_failed_connect_is_logged_with_the_url(tmp_path, free_port):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        nowhere = f"nats://127.0.0.1:{sock.getsockname()[1]}"
    serve = Serve(tmp_path, free_port, nats_url=nowhere)
    try:
        await eventually(said(serve, f"cannot reach NATS at {nowhere}: "), "the connect failure in the log", serve)

        async def unready():
            status, body = await serve.readyz()
            return status == 503 and body
        body = await eventually(unready, "/readyz answering 503", serve)
        assert body["missing"] == ["NATS connection"]
        assert (await serve.post("refused")) == 503
    finally:
        serve.stop()
    assert serve.process.returncode == 0, serve.text()
