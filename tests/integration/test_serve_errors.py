"""User mistakes at ``serve`` start-up: one line naming the setting, exit status 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def serve(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TRIGGER_ROUTER_STATE_DIR": str(tmp_path), "TRIGGER_ROUTER_LOG__LEVEL": "warning",
                   **{f"TRIGGER_ROUTER_{k}": v for k, v in env.items()}}
    return subprocess.run([sys.executable, "-m", "router.cli", "serve"], env=environment, capture_output=True,
                          text=True, timeout=60)


def test_a_body_limit_the_bus_cannot_store_is_refused(tmp_path, free_port):
    done = serve(tmp_path, HTTP__PORT=str(free_port), HTTP__MAX_BODY_BYTES=str(1024 * 1024))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "http.max_body_bytes" in done.stderr and "at most 1040384" in done.stderr and "max_payload" in done.stderr


def test_an_http_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(tmp_path, HTTP__PORT=str(port))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "http.port" in done.stderr and str(port) in done.stderr


def test_a_web_view_exposed_without_credentials_is_refused(tmp_path, free_port):
    """Run history (webhook payloads, check output) is never served beyond loopback to anyone."""
    done = serve(tmp_path, HTTP__PORT=str(free_port), HTTP__HOST="0.0.0.0", WEB__ENABLED="true")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "web:" in done.stderr and "'0.0.0.0' is beyond loopback" in done.stderr
    assert "web.tokens nor web.users" in done.stderr
