"""The embedded nats-server as users meet it: two ``serve`` on one store, ``kill -9``, a busy port.

Every test runs ``python -m router.cli serve`` as a real process on a temporary state dir with a
real nats-server, and waits on what a user could observe (the endpoint file, a process exiting,
the server answering). Whatever a test started, and any nats-server on its store, is killed at
teardown, so no process outlives a test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import pytest

from tests.support import natsserver, processes

CLI = [sys.executable, "-m", "router.cli", "serve"]


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, what: str, timeout: float = 30.0):
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def alive(pid: int) -> bool:
    """Running, not a zombie (a killed server whose new parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def nats_servers_under(root: Path) -> list[int]:
    """Pids of the live nats-server processes whose command line names a path below ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and "nats-server" in Path(args[0]).name and any(str(root) in arg for arg in args):
            if alive(int(entry.name)):
                found.append(int(entry.name))
    return found


class Serves:
    """``serve`` processes of one test, each with its log files, all stopped at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"
        self.data_dir = self.state_dir / "nats"
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, http_port: int, **settings: str) -> subprocess.Popen:
        env = {**os.environ, "TRIGGER_ROUTER_STATE_DIR": str(self.state_dir),
               "TRIGGER_ROUTER_HTTP__PORT": str(http_port),
               **{f"TRIGGER_ROUTER_{key}": value for key, value in settings.items()}}
        env.pop("TRIGGER_ROUTER_NATS__URL", None)
        with open(self.tmp_path / f"{name}.out", "w") as out, open(self.tmp_path / f"{name}.err", "w") as err:
            process = subprocess.Popen(CLI, env=env, stdout=out, stderr=err, start_new_session=True)
        self.started.append(process)
        return process

    def stderr(self, name: str) -> str:
        return (self.tmp_path / f"{name}.err").read_text()

    def endpoint(self) -> str | None:
        try:
            return (self.data_dir / "endpoint").read_text().strip() or None
        except OSError:
            return None

    def nats_server_pid(self) -> int:
        return int((self.data_dir / "nats-server.pid").read_text())

    def stop_all(self) -> None:
        for process in self.started:
            processes.stop_group(process)
        for pid in nats_servers_under(self.tmp_path):
            os.kill(pid, signal.SIGKILL)
        for pid in nats_servers_under(self.tmp_path):
            wait_until(lambda: not alive(pid), f"nats-server {pid} to exit after SIGKILL", 10)


@pytest.fixture
def serves(tmp_path):
    started = Serves(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def ready(serves: Serves, process: subprocess.Popen, name: str) -> str:
    """The URL of the embedded server once ``serve`` wrote it; fails early if ``serve`` exited."""
    def url():
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{serves.stderr(name)}")
        return serves.endpoint()
    return wait_until(url, f"{name} to write its endpoint file")


async def jetstream_answers(url: str) -> bool:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        await nc.jetstream().account_info()
        return True
    finally:
        await nc.close()


def refused_line(serves: Serves, process: subprocess.Popen, name: str) -> str:
    """The one line a refused ``serve`` printed (its logs are at warning level, so nothing else)."""
    assert process.wait(60) == 2, serves.stderr(name)
    stderr = serves.stderr(name)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trigger-router: error: "), stderr
    return lines[0]


async def test_second_serve_on_the_same_store_is_refused_and_the_first_keeps_working(serves, free_port):
    first = serves.start("first", free_port)
    url = ready(serves, first, "first")
    server_pid = serves.nats_server_pid()

    second = serves.start("second", free_tcp_port(), LOG__LEVEL="warning")
    line = refused_line(serves, second, "second")

    assert "nats.embedded.data_dir" in line
    assert f"pid {first.pid}" in line and url in line
    assert first.poll() is None
    assert serves.endpoint() == url  # the refused serve did not remove the first one's file
    assert serves.nats_server_pid() == server_pid and alive(server_pid)
    assert await jetstream_answers(url)


def test_kill_9_of_serve_takes_its_nats_server_down(serves, free_port):
    process = serves.start("killed", free_port)
    ready(serves, process, "killed")
    server_pid = serves.nats_server_pid()
    assert alive(server_pid)

    process.send_signal(signal.SIGKILL)
    process.wait(10)

    wait_until(lambda: not alive(server_pid), f"nats-server {server_pid} to exit after its serve was killed", 20)
    assert nats_servers_under(serves.tmp_path) == []


async def test_a_nats_server_left_on_the_store_is_stopped_by_the_next_serve(serves, free_port):
    # As a serve killed before the parent-death signal was set would leave it: detached, own
    # session, listening, with its pid in the pid file.
    serves.data_dir.mkdir(parents=True)
    ports_dir = Path(tempfile.mkdtemp(prefix="tr-test-ports-", dir=serves.tmp_path))
    stale = subprocess.Popen(
        [natsserver.binary(), "-js", "-sd", str(serves.data_dir / "jetstream"), "-a", "127.0.0.1", "-p", "-1",
         "--ports_file_dir", str(ports_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        (serves.data_dir / "nats-server.pid").write_text(f"{stale.pid}\n")
        wait_until(lambda: list(ports_dir.glob("*.ports")), "the stale nats-server to listen", 15)

        process = serves.start("next", free_port)
        url = ready(serves, process, "next")

        assert stale.wait(5) is not None  # it was stopped before the new server was started
        assert f"stopped nats-server pid {stale.pid}" in serves.stderr("next")
        assert serves.nats_server_pid() != stale.pid
        assert nats_servers_under(serves.tmp_path) == [serves.nats_server_pid()]
        assert await jetstream_answers(url)
    finally:
        processes.stop_group(stale)


def test_port_in_use_is_one_line_naming_the_port_and_the_setting(serves, free_port):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = serves.start("busy", free_port, NATS__EMBEDDED__PORT=str(port), LOG__LEVEL="warning")
        line = refused_line(serves, process, "busy")

    assert "nats.embedded.port" in line
    assert str(port) in line and "address already in use" in line
    assert nats_servers_under(serves.tmp_path) == []
    assert serves.endpoint() is None
