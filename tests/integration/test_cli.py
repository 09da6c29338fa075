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


def test_version_is_the_package_version():
    from importlib import metadata

    result = subprocess.run(CLI + ["--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"trigger-router {metadata.version('trigger-router')}"


def test_a_bad_environment_variable_is_named_not_the_file(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("http:\n  port: 9999\n")
    bad = subprocess.run(CLI + ["--config", str(config), "config", "check"], capture_output=True, text=True,
                         env={**os.environ, "TRIGGER_ROUTER_HTTP__PORT": "eighty"}, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("trigger-router: error: TRIGGER_ROUTER_HTTP__PORT: http.port: Input should be a valid "
                                 "integer"), bad.stderr
    assert str(config) not in bad.stderr


def test_config_check_validates_the_rules_it_names(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("kind: TriggerRule\nmetadata: {name: ok}\nspec:\n  action: {exec: {command: [echo]}}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TriggerRule\nmetadata: {name: smoke}\nspec:\n  filters: [{regex: {}}]\n"
                   "  action: {exec: {command: echo}}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"rules:\n  paths: [{good}]\n")
    env = {**os.environ, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path)}
    ok = subprocess.run(CLI + ["--config", str(config), "config", "check"], capture_output=True, text=True, env=env,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert str(good) in ok.stdout and ok.stderr == ""
    config.write_text(f"rules:\n  paths: [{good}, {bad}, {tmp_path / 'gone.yaml'}]\n")
    failed = subprocess.run(CLI + ["--config", str(config), "config", "check"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.splitlines() == [
        f"{tmp_path / 'gone.yaml'}: no such file or directory",
        f"{bad}:4:14: rule smoke, field spec.filters[0].regex: unknown filter dialect 'regex' (known: all, any, cel, "
        "cesql, exact, not, prefix, sql, suffix)",
        f"{bad}:5:19: rule smoke, field spec.action.exec.command: Input should be a valid list",
        "3 problem(s) in 2 file(s)"]


def seed_runs(url: str, states: list[dict]) -> None:
    from router.engine import runs

    async def write():
        nc = await nats.connect(url)
        try:
            store = await runs.RunStates.open(nc.jetstream(), settings.load(None, env={}))
            for state in states:
                await store.create(state["runId"], state)
        finally:
            await nc.close()

    asyncio.run(write())


def test_runs_list_selects_aligns_and_shows_iso_times(tmp_path, nats_server):
    now = time.time()
    long_rule = "a-rule-with-a-name-longer-than-twenty-four"
    seed_runs(nats_server.url, [
        {"runId": "a" * 32, "rule": "smoke", "state": "finished", "outcome": "success", "queuedAt": now - 7200,
         "event": {"type": "com.github.push", "id": "e1"}},
        {"runId": "b" * 32, "rule": long_rule, "state": "finished", "outcome": "failure", "queuedAt": now - 60,
         "event": {"type": "com.github.push", "id": "e2"}},
        {"runId": "c" * 32, "rule": "smoke", "state": "finished", "outcome": "failure", "queuedAt": now - 30,
         "event": {"type": "com.github.push", "id": "e3"}},
    ])
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_server.url, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path)}

    def runs_list(*args):
        done = subprocess.run(CLI + ["runs", "list", *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    narrow = runs_list()
    assert narrow[0].split() == ["RUN", "RULE", "STATE", "OUTCOME", "QUEUED", "EVENT", "POLICY"]
    assert [line[:12] for line in narrow[1:]] == ["aaaaaaaaaaa…", "bbbbbbbbbbb…", "ccccccccccc…"]
    queued = narrow[0].index("QUEUED")
    assert all(line[queued:queued + 20] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))
               for line, t in zip(narrow[1:], (now - 7200, now - 60, now - 30)))
    assert long_rule not in narrow[2] and long_rule[:23] + "…" in narrow[2]
    wide = runs_list("--wide")
    assert wide[2].startswith("b" * 32 + "  " + long_rule + "  finished")
    assert wide[0].index("RULE") == 34 and {line[32:34] for line in wide} == {"  "}  # the RUN column is aligned
    assert [line[:1] for line in runs_list("--outcome", "failure")[1:]] == ["b", "c"]
    assert [line[:1] for line in runs_list("--rule", "smoke", "--since", "1h")[1:]] == ["c"]
    assert [line[:1] for line in runs_list("--limit", "2")[1:]] == ["b", "c"]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    assert [line[:1] for line in runs_list("--since", since)[1:]] == ["b", "c"]
    listed = [json.loads(line) for line in runs_list("--json", "--limit", "1")]
    assert listed[0]["queuedAt"] == now - 30 and listed[0]["queuedAtIso"].endswith("Z")

    shown = subprocess.run(CLI + ["runs", "show", "a" * 32], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state["queuedAt"] == now - 7200
    assert state["queuedAtIso"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now - 7200)))

    bad = subprocess.run(CLI + ["runs", "list", "--since", "yesterday"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert bad.returncode == 2 and "--since 'yesterday' is neither a duration" in bad.stderr
