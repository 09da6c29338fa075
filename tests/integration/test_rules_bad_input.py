"""Rule files under bad input, as the operator of ``serve`` sees it: exit status, the log, runs.

At start-up a bad file is one line and exit status 2. During a hot reload it is one rejected
reload: the previous rules keep routing, counted as executions of a real action. SIGTERM stops
``serve`` within ``shutdown_grace`` even when the drain cannot finish (the NATS server is
stopped with SIGSTOP, so the connection stays open and nothing answers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from tests.support import routers
from tests.unit.router.rules.test_hostile_rules import CASES

START_UP = ["bad byte in a name", "nested 20,000 levels (flow)", "nested 20,000 levels (block)", "alias bomb",
            "unknown apiVersion", "unknown CEL function in a filter", "an empty file"]


@pytest.mark.parametrize("case", START_UP)
def test_a_bad_rules_file_at_start_up_is_one_line_and_exit_2(tmp_path, free_port, case):
    content, words = CASES[case]
    path = tmp_path / "rules.yaml"
    path.write_bytes(content)
    env = {**os.environ, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / "state"), "TRIGGER_ROUTER_HTTP__PORT": str(free_port),
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([str(path)])}
    done = subprocess.run([sys.executable, "-m", "router.cli", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"trigger-router: error: {path}: ") and all(w in lines[0] for w in words), lines[0]


def wait_until(condition, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def execution_count(log: routers.ExecLog) -> int:
    return sum(log.completed().values())


async def test_a_bad_byte_during_hot_reload_keeps_routing_with_the_previous_rules(tmp_path, nats_server, free_port):
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path, begin=False)
    router = routers.start_router(nats_server.url, rules, free_port, tmp_path, "serve",
                                  RULES__RELOAD_INTERVAL="0.1s", SHUTDOWN_GRACE="20s")
    serve_log = tmp_path / "serve.log"
    nc = await nats.connect(nats_server.url)
    try:
        probe = routers.Probe(nc.jetstream())
        assert (await routers.wait_for(probe.subscribed, bool, 60)).ok, serve_log.read_text()
        await routers.publish_events(nats_server.url, 1, "before")
        wait_until(lambda: execution_count(log) == 1, 30, "the first run", serve_log)

        Path(rules).write_bytes(b"kind: TriggerRule\nmetadata: {name: \xff}\n")
        wait_until(lambda: "rule reload rejected" in serve_log.read_text(), 30, "the rejected reload", serve_log)
        await routers.publish_events(nats_server.url, 2, "after")
        wait_until(lambda: execution_count(log) == 3, 30, "two runs with the previous rules", serve_log)

        Path(rules).write_bytes(b"")  # emptied: rejected too, the rule still fires
        wait_until(lambda: serve_log.read_text().count("rule reload rejected") == 2, 30, "the second rejection",
                   serve_log)
        await routers.publish_events(nats_server.url, 1, "emptied")
        wait_until(lambda: execution_count(log) == 4, 30, "a run after the emptied file", serve_log)

        text = serve_log.read_text()
        assert "Traceback" not in text and "not UTF-8: byte 0xff at line 2" in text and "has no rules" in text
        router.send_signal(signal.SIGTERM)
        assert router.wait(30) == 0, serve_log.read_text()[-3000:]
    finally:
        await nc.close()
        routers.stop_router(router)
    assert execution_count(log) == 4, log.completed()


@contextlib.asynccontextmanager
async def serving_with_nats_stopped(tmp_path, nats_server, free_port, grace: str):
    """A subscribed ``serve`` whose nats-server is then stopped with SIGSTOP: the socket stays open
    and nothing answers, so a drain at shutdown cannot finish. Yields (process, its log)."""
    log = routers.ExecLog(tmp_path / "exec.log")
    router = routers.start_router(nats_server.url, routers.exec_rule(tmp_path, log.path), free_port, tmp_path,
                                  "serve", SHUTDOWN_GRACE=grace)
    serve_log = tmp_path / "serve.log"
    nc = await nats.connect(nats_server.url)
    try:
        assert (await routers.wait_for(routers.Probe(nc.jetstream()).subscribed, bool, 60)).ok, serve_log.read_text()
    finally:
        await nc.close()
    os.killpg(nats_server.process.pid, signal.SIGSTOP)
    try:
        yield router, serve_log
    finally:
        os.killpg(nats_server.process.pid, signal.SIGCONT)
        routers.stop_router(router)


async def test_sigterm_stops_serve_within_the_grace_even_when_nats_hangs(tmp_path, nats_server, free_port):
    async with serving_with_nats_stopped(tmp_path, nats_server, free_port, "3s") as (router, serve_log):
        router.send_signal(signal.SIGTERM)
        status = router.wait(30)
        text = serve_log.read_text()
        assert status == 1, text[-3000:]
        assert "shutdown took longer than shutdown_grace (3 s): exiting now" in text, text[-3000:]


async def test_a_second_sigterm_exits_at_once(tmp_path, nats_server, free_port):
    async with serving_with_nats_stopped(tmp_path, nats_server, free_port, "60s") as (router, serve_log):
        router.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in serve_log.read_text(), 30, "the first signal's shutdown", serve_log)
        router.send_signal(signal.SIGTERM)
        assert router.wait(30) == 1, serve_log.read_text()[-3000:]
        assert "SIGTERM again: exiting now" in serve_log.read_text()
