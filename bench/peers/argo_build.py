"""Build the `argo-events` binary from the Go module proxy into a per-version cache.

Only the module proxy is reachable, so the binary is compiled, once per version, into
``~/.cache/trigger-router/argo-events/<version>_<os>-<arch>/bin/argo-events`` (the same layout,
lock and stamp file as ``tests/kubeplane/build.py``; ``TRIGGER_ROUTER_ARGO_CACHE`` overrides the
root). Two things differ from the control-plane build:

- ``go install github.com/argoproj/argo-events/cmd@v`` is refused: it reads the module's version
  list for deprecations, and the proxy answers ``403 Forbidden`` for that list (single versions are
  served). So the module is fetched with ``go mod download`` and built as the main module.
- The eventsource and the sensor both serve Prometheus metrics on the compile-time constant
  ``:7777`` (``pkg/apis/events/v1alpha1/const.go``: ``EventSourceMetricsPort``,
  ``SensorMetricsPort``; ``pkg/metrics/metrics.go`` ``Metrics.Run`` exits the process when the
  bind fails). In a cluster each runs in its own pod; as two processes on one host the second
  dies. The build therefore works on a copy of the module in which those two constants are ``0``
  (an ephemeral port), and nothing else changes. The stamp records the patch.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.kubeplane import build as kubeplane_build
from tests.support import processes

MODULE = "github.com/argoproj/argo-events"
VERSION = "v1.9.11"
"""Newest release the proxy serves (its version list is 403; the tags were read from the source)."""
CACHE_ENV = "TRIGGER_ROUTER_ARGO_CACHE"
STAMP = "build.json"
CONST_FILE = "pkg/apis/events/v1alpha1/const.go"
_METRICS_PORTS = re.compile(r"^(\s*(?:EventSourceMetricsPort|SensorMetricsPort)\s*=\s*)7777\s*$",
                            re.MULTILINE)


def cache_root() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "trigger-router" / "argo-events"


def home(version: str = VERSION) -> Path:
    return cache_root() / f"{version}_{sys.platform}-{platform.machine().lower()}"


def binary(version: str = VERSION) -> Path:
    return home(version) / "bin" / "argo-events"


def is_built(version: str = VERSION) -> bool:
    return (home(version) / STAMP).is_file() and binary(version).is_file()


def ensure_built(version: str = VERSION, log=None) -> Path:
    """Return the path of the binary, building it first when the cache lacks it."""
    log = log or _stderr
    if is_built(version):
        return binary(version)
    directory = home(version)
    directory.mkdir(parents=True, exist_ok=True)
    with kubeplane_build.locked(directory, log, "argo-events"):
        if not is_built(version):  # another process may have finished it while we waited
            _build(version, directory, log)
    return binary(version)


def _build(version: str, directory: Path, log) -> None:
    (directory / STAMP).unlink(missing_ok=True)
    started = time.monotonic()
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise RuntimeError("building argo-events needs Go on PATH (or at /usr/local/go/bin/go)")
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    log(f"argo-events: cold build of {MODULE}@{version} into {directory}; minutes on 2 cores")
    fetched = _go(go, ["mod", "download", "-json", f"{MODULE}@{version}"], directory, env)
    source = directory / "src"
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(json.loads(fetched)["Dir"], source)
    for path in source.rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    _patch_metrics_ports(source / CONST_FILE)
    out = directory / "bin"
    out.mkdir(exist_ok=True)
    tmp = out / ".argo-events.tmp"
    ldflags = f"-s -w -X {MODULE}.version={version} -X {MODULE}.gitTreeState=patched-metrics-port"
    _go(go, ["build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), "./cmd"], source, env)
    tmp.chmod(0o755)
    os.replace(tmp, out / "argo-events")
    stamp = {"module": MODULE, "version": version,
             "go": _go(go, ["env", "GOVERSION"], directory, env).strip(),
             "patch": f"{CONST_FILE}: EventSourceMetricsPort, SensorMetricsPort 7777 -> 0",
             "seconds": round(time.monotonic() - started, 1)}
    (directory / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"argo-events: build finished in {stamp['seconds']}s")


def _patch_metrics_ports(const_go: Path) -> None:
    text, count = _METRICS_PORTS.subn(r"\g<1>0", const_go.read_text())
    if count != 2:
        raise RuntimeError(f"{const_go}: expected the two metrics-port constants at 7777, found "
                           f"{count}; the upstream layout changed, review the patch")
    const_go.write_text(text)


def _go(go: str, args: list[str], cwd: Path, env: dict) -> str:
    # nice: the machine is shared; the parent's death takes the compiler down with it.
    result = subprocess.run(["nice", "-n", "10", go, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=processes.die_with_parent)
    if result.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed:\n{result.stderr[-8000:]}")
    return result.stdout


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
