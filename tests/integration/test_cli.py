"""The README quickstart, as a user runs it: ``serve`` on embedded NATS, a signed webhook, ``events tail``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nats

from router.bus import connection as bus
from router.config import settings
from tests.conftest import SHARED
from tests.integration.conftest import github_signature

CLI = [sys.executable, "-m", "router.cli"]


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200")


def test_quickstart_push_shows_up_in_tail(tmp_path: Path, free_port: int):
    env = {**os.environ, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / "state"),
           "TRIGGER_ROUTER_HTTP__PORT": str(free_port), "TRIGGER_ROUTER_GITHUB__SECRETS": '["Zq9-not-in-any-path"]'}
    env.pop("TRIGGER_ROUTER_NATS__URL", None)
    serve = subprocess.Popen(CLI + ["serve"], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    tail = None
    try:
        wait_for(f"http://127.0.0.1:{free_port}/readyz")
        tail = subprocess.Popen(CLI + ["events", "tail", "--json", "--all", "--count", "1"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        body = (SHARED / "fixtures/github/push/payload.json").read_bytes()
        request = urllib.request.Request(
            f"http://127.0.0.1:{free_port}/webhooks/github", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                     "X-GitHub-Delivery": "quickstart-1", "X-Hub-Signature-256": github_signature(body, "Zq9-not-in-any-path")})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        out, err = tail.communicate(timeout=30)
        assert tail.returncode == 0, err
        event = json.loads(out.splitlines()[0])
        assert (event["type"], event["id"]) == ("com.github.push", "quickstart-1")
        assert event["data"] == json.loads(body)
    finally:
        if tail and tail.poll() is None:
            tail.kill()
        os.killpg(serve.pid, signal.SIGTERM)
        _, serve_log = serve.communicate(timeout=30)
    assert serve.returncode == 0, serve_log
    # The embedded nats-server was stopped with serve, and its endpoint file removed.
    assert not (tmp_path / "state/nats/endpoint").exists()
    assert "quickstart-1" in serve_log and "Zq9-not-in-any-path" not in serve_log


def test_events_send_then_tail(tmp_path: Path, nats_server):
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_server.url}
    document = tmp_path / "event.json"
    document.write_text(json.dumps({"specversion": "1.0", "id": "sent-1", "source": "/cli", "type": "com.example.sent",
                                    "data": {"hello": "world"}}))
    env_state = {**env, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path)}

    async def create_streams():  # as `serve` does at start-up
        nc = await nats.connect(nats_server.url)
        await bus.ensure_streams(nc.jetstream(), settings.BusSettings())
        await nc.close()

    asyncio.run(create_streams())
    sent = subprocess.run(CLI + ["events", "send", str(document)], env=env_state, capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert "stored com.example.sent sent-1" in sent.stdout
    tail = subprocess.run(CLI + ["events", "tail", "--all", "-n", "1", "--json"], env=env_state,
                          capture_output=True, text=True, timeout=30)
    assert json.loads(tail.stdout)["data"] == {"hello": "world"}


def test_config_check_redacts_secrets_and_names_bad_keys(tmp_path: Path):
    secret_file = tmp_path / "gitlab-tokens"
    secret_file.write_text("token-one\ntoken-two\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"http:\n  port: 9999\ngitlab:\n  tokens_file: {secret_file}\ngithub:\n  secrets: [hunter2]\n")
    ok = subprocess.run(CLI + ["--config", str(config), "config", "check"], capture_output=True, text=True,
                        env={**os.environ, "TRIGGER_ROUTER_NATS__URL": "nats://127.0.0.1:4222"})
    assert ok.returncode == 0, ok.stderr
    assert "port: 9999" in ok.stdout and "url: nats://127.0.0.1:4222" in ok.stdout
    assert "hunter2" not in ok.stdout and "token-one" not in ok.stdout
    assert ok.stdout.count("'***'") == 3

    config.write_text("http:\n  prot: 9999\n")
    bad = subprocess.run(CLI + ["--config", str(config), "config", "check"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert f"{config}: http.prot: unknown key" in bad.stderr and "Traceback" not in bad.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    """`trigger-router config check | head -1`: the pipe is closed before the first write here."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "router.cli", "config", "check"], stdout=write,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141
