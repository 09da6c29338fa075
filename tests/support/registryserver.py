"""A real CNCF distribution registry (Debian's ``docker-registry``) on a free loopback port.

Configured from a generated file: filesystem storage in a temporary directory, optionally a
notifications endpoint (the router's edge, with an ``Authorization`` header) and either htpasswd
(basic) or token (bearer) authentication. ``skopeo`` pushes to and pulls from it over plain HTTP.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.support import processes
from tests.support.ports import free_port  # noqa: F401 (the tests import it from here)

BINARY = "/usr/bin/docker-registry"


class RegistryServer:
    def __init__(self, root: Path, *, notify_url: str | None = None, notify_authorization: str | None = None,
                 htpasswd: Path | None = None, token: dict | None = None) -> None:
        self.root = root
        self.port = free_port()
        config: dict = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "test-only-http-secret"},
        }
        if notify_url:
            config["notifications"] = {"endpoints": [{
                "name": "trigger-router", "url": notify_url, "timeout": "2s", "threshold": 3,
                "backoff": "250ms", "headers": {"Authorization": [notify_authorization or ""]},
            }]}
        if htpasswd:
            config["auth"] = {"htpasswd": {"realm": "trigger-router-test", "path": str(htpasswd)}}
        if token:
            config["auth"] = {"token": token}
        root.mkdir(parents=True, exist_ok=True)
        self.config_file = root / "config.yml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 15.0) -> "RegistryServer":
        self.log = open(self.root / "registry.log", "wb")
        self.process = subprocess.Popen([BINARY, "serve", str(self.config_file)], stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.process.returncode}: "
                                   f"{(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # 401 from an authenticating registry: it is serving
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start in time")

    def stop(self) -> None:
        processes.stop_group(self.process)
        self.process = None
        if getattr(self, "log", None):
            self.log.close()
