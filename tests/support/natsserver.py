"""A real nats-server with JetStream, on a random loopback port, with a temporary store.

``stop()`` and ``start()`` again reuse the port and the store, so tests can take JetStream away
and bring it back exactly like an outage of a real deployment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import processes


def binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else "nats-server"


class NatsServer:
    def __init__(self, store: Path, *extra: str, scheme: str = "nats") -> None:
        self.store = store
        self.extra = extra
        self.scheme = scheme
        self.port = -1
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "NatsServer":
        ports_dir = Path(tempfile.mkdtemp(prefix="tr-test-ports-"))
        self.process = subprocess.Popen(
            [binary(), "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port),
             "--ports_file_dir", str(ports_dir), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            for ports_file in ports_dir.glob("*.ports"):
                try:
                    url = json.loads(ports_file.read_text())["nats"][0]
                except (OSError, ValueError, KeyError):
                    continue
                self.port = int(url.rsplit(":", 1)[1])
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("nats-server did not report its port in time")

    def stop(self) -> None:
        processes.stop_group(self.process)
        self.process = None
