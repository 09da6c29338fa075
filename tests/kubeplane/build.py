"""Build etcd, the Kubernetes control-plane commands and kwok from Go sources into a cache.

There are no prebuilt binaries to download here, only the Go module proxy, so the binaries are
compiled. Two upstream quirks shape how:

- `go install k8s.io/kubernetes/cmd/...@v` is refused because k8s.io/kubernetes' go.mod carries
  `replace` directives pointing its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
  `./staging/...`. A scratch module that requires k8s.io/kubernetes and replaces every staging
  module listed there at v0.0.0 with the matching published v0.Y.Z builds the commands unchanged.
- etcd's main module has relative replaces too, but its `main` only calls `etcdmain.Main`, so the
  scratch module for etcd is a two-line `main` over go.etcd.io/etcd/server/v3.

kwok needs no trick: `go install sigs.k8s.io/kwok/cmd/kwok@v` works.

The cache directory is keyed by every version, so bumping one rebuilds everything into a new
directory and an old checkout keeps working. A build is only taken as finished when its stamp
file exists; binaries are written under a temporary name and renamed, and a file lock serialises
concurrent builders (two pytest sessions, or `python -m tests.kubeplane build` beside one).
The Go module and build caches are the user's defaults, so a rebuild after a version bump only
compiles what changed.

The client tools (`helm`, and `kubectl` from the same k8s.io/kubernetes build as the control
plane) live in a cache directory and stamp of their own (`ensure_tools`): adding or bumping a tool
must not change the control plane's key and force its much longer rebuild.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.kubeplane import processes

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES = ("etcd", *KUBE_COMMANDS, "kwok")

TOOLS = ("helm", "kubectl")

CACHE_ENV = "TRIGGER_ROUTER_KUBE_CACHE"
STAMP = "build.json"

_ETCD_MAIN = """\
// Same as etcd's own main.go; kept here because etcd's main module has relative replaces.
package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


@dataclasses.dataclass(frozen=True)
class Versions:
    """The upstream releases one cache directory holds."""

    kubernetes: str = KUBERNETES_VERSION
    """Release of k8s.io/kubernetes; its staging modules are used at v0.<minor>.<patch>."""
    etcd: str = ETCD_VERSION
    """Release of go.etcd.io/etcd/server/v3."""
    kwok: str = KWOK_VERSION
    """Release of sigs.k8s.io/kwok."""

    @property
    def key(self) -> str:
        arch = f"{sys.platform}-{platform.machine().lower()}"
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}_{arch}"


@dataclasses.dataclass(frozen=True)
class ToolVersions:
    """The client tools one cache directory holds; kubectl follows the control plane's release."""

    helm: str = HELM_VERSION
    """Release of helm.sh/helm/v3."""
    kubernetes: str = KUBERNETES_VERSION
    """Release of k8s.io/kubernetes that `cmd/kubectl` is built from."""

    @property
    def key(self) -> str:
        arch = f"{sys.platform}-{platform.machine().lower()}"
        return f"tools_helm-{self.helm}_kubectl-{self.kubernetes}_{arch}"


@dataclasses.dataclass(frozen=True)
class Tools:
    """Paths of the built client tools."""

    helm: Path
    kubectl: Path


def cache_root() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "trigger-router" / "kubeplane"


def bin_dir(versions: Versions = Versions()) -> Path:
    return cache_root() / versions.key / "bin"


def is_built(versions: Versions = Versions()) -> bool:
    directory = bin_dir(versions)
    return (directory.parent / STAMP).is_file() and all((directory / b).is_file() for b in BINARIES)


def ensure_built(versions: Versions = Versions(), log=None) -> Path:
    """Return the directory with all binaries, building them first if the cache lacks them."""
    log = log or _stderr
    if is_built(versions):
        return bin_dir(versions)
    home = cache_root() / versions.key
    home.mkdir(parents=True, exist_ok=True)
    with locked(home, log):
        if not is_built(versions):  # another process may have finished it while we waited
            _build(versions, home, log)
    return bin_dir(versions)


def tools_dir(versions: ToolVersions = ToolVersions()) -> Path:
    return cache_root() / versions.key / "bin"


def tools_built(versions: ToolVersions = ToolVersions()) -> bool:
    directory = tools_dir(versions)
    return (directory.parent / STAMP).is_file() and all((directory / t).is_file() for t in TOOLS)


def ensure_tools(versions: ToolVersions = ToolVersions(), log=None) -> Tools:
    """Return helm and kubectl, building them first if the cache lacks them."""
    log = log or _stderr
    if not tools_built(versions):
        home = cache_root() / versions.key
        home.mkdir(parents=True, exist_ok=True)
        with locked(home, log):
            if not tools_built(versions):
                _build_tools(versions, home, log)
    directory = tools_dir(versions)
    return Tools(helm=directory / "helm", kubectl=directory / "kubectl")


@contextlib.contextmanager
def locked(home: Path, log, what: str = "kubeplane"):
    """``home`` to ourselves for a build: another process building there is waited for (and said)."""
    with open(home / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{what}: another process is building; waiting for {home / '.lock'}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(versions: Versions, home: Path, log) -> None:
    (home / STAMP).unlink(missing_ok=True)
    out = home / "bin"
    out.mkdir(exist_ok=True)
    go = _GoTool(home, log)
    started = time.monotonic()
    log(f"kubeplane: cold build of {versions} into {out}; this takes a while on a small machine")
    _build_etcd(go, versions, home / "src" / "etcd", out)
    _build_kube(go, versions, home / "src" / "kube", out)
    go.run(["install", f"sigs.k8s.io/kwok/cmd/kwok@{versions.kwok}"], cwd=home,
           extra_env={"GOBIN": str(home / "gobin")}, what="kwok")
    _publish(home / "gobin" / "kwok", out / "kwok")
    stamp = {**dataclasses.asdict(versions), "go": go.version(),
             "seconds": round(time.monotonic() - started, 1)}
    (home / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"kubeplane: build finished in {stamp['seconds']}s")


def _build_etcd(go: _GoTool, versions: Versions, src: Path, out: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "main.go").write_text(_ETCD_MAIN)
    (src / "go.mod").write_text(
        "module kubeplane.local/etcd\n\ngo 1.26\n\n"
        f"require go.etcd.io/etcd/server/v3 {versions.etcd}\n"
    )
    tmp = out / ".etcd.tmp"
    ldflags = f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=release-{versions.etcd}"
    go.run(["build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), "."], cwd=src, what="etcd")
    _publish(tmp, out / "etcd")


def _build_kube(go: _GoTool, versions: Versions, src: Path, out: Path) -> None:
    _build_kube_commands(go, versions.kubernetes, src, out, KUBE_COMMANDS)


def _build_kube_commands(go: _GoTool, kubernetes: str, src: Path, out: Path,
                         commands: tuple[str, ...]) -> None:
    """Build `k8s.io/kubernetes/cmd/<command>` for each command through a scratch module."""
    src.mkdir(parents=True, exist_ok=True)
    major, minor, patch = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", kubernetes).groups()
    staging_version = f"v0.{minor}.{patch}"
    upstream_mod = go.download_mod(f"k8s.io/kubernetes@{kubernetes}")
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+) v0\.0\.0$", upstream_mod, re.MULTILINE)
    replaces = "".join(f"\t{m} => {m} {staging_version}\n" for m in sorted(set(staging)))
    (src / "go.mod").write_text(
        "module kubeplane.local/kube\n\ngo 1.26\n\n"
        f"require k8s.io/kubernetes {kubernetes}\n\n"
        f"replace (\n{replaces})\n"
    )
    # The package main has to exist in the scratch module for `go build` to accept it as the
    # main module, even though every command built lives in a dependency.
    (src / "doc.go").write_text("// Package kube only anchors the scratch module.\npackage kube\n")
    build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    stamps = {
        "gitVersion": kubernetes, "gitMajor": major, "gitMinor": minor,
        "gitTreeState": "clean", "buildDate": build_date,
    }
    xflags = " ".join(
        f"-X {pkg}.{name}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in stamps.items()
    )
    for command in commands:
        tmp = out / f".{command}.tmp"
        go.run(["build", "-trimpath", "-ldflags", f"-s -w {xflags}", "-o", str(tmp),
                f"k8s.io/kubernetes/cmd/{command}"], cwd=src, what=command)
        _publish(tmp, out / command)


def _build_tools(versions: ToolVersions, home: Path, log) -> None:
    (home / STAMP).unlink(missing_ok=True)
    out = home / "bin"
    out.mkdir(exist_ok=True)
    go = _GoTool(home, log)
    started = time.monotonic()
    log(f"kubeplane: cold build of {versions} into {out}; helm alone takes minutes")
    _build_kube_commands(go, versions.kubernetes, home / "src" / "kube", out, ("kubectl",))
    # helm's go.mod has no replace directives, so `go install` works; the -X flags are the ones
    # helm's Makefile sets, so `helm version` reports the release instead of a bare "v3.x".
    xflags = (f"-X helm.sh/helm/v3/internal/version.version={versions.helm}"
              " -X helm.sh/helm/v3/internal/version.gitTreeState=clean")
    go.run(["install", "-trimpath", "-ldflags", f"-s -w {xflags}",
            f"helm.sh/helm/v3/cmd/helm@{versions.helm}"], cwd=home,
           extra_env={"GOBIN": str(home / "gobin")}, what="helm")
    _publish(home / "gobin" / "helm", out / "helm")
    stamp = {**dataclasses.asdict(versions), "go": go.version(),
             "seconds": round(time.monotonic() - started, 1)}
    (home / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"kubeplane: tools build finished in {stamp['seconds']}s")


def _publish(tmp: Path, final: Path) -> None:
    tmp.chmod(0o755)
    os.replace(tmp, final)


class _GoTool:
    """Runs the go command with settings that make builds reproducible on a fresh machine."""

    def __init__(self, home: Path, log) -> None:
        self._home = home  # a directory outside any Go module, for module-less go commands
        self._log = log
        self._go = shutil.which("go") or "/usr/local/go/bin/go"
        if not Path(self._go).exists():
            raise RuntimeError("kubeplane needs Go 1.26+ on PATH (or at /usr/local/go/bin/go)")
        self._env = {
            **os.environ,
            # Never fetch a different toolchain behind our back; fail loudly instead.
            "GOTOOLCHAIN": "local",
            # Let `go build` resolve the scratch modules' requirements and go.sum itself.
            "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -mod=mod".strip(),
            "CGO_ENABLED": "0",
        }

    def version(self) -> str:
        return subprocess.run([self._go, "env", "GOVERSION"], env=self._env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def download_mod(self, module: str) -> str:
        result = subprocess.run([self._go, "mod", "download", "-json", module], env=self._env,
                                cwd=self._home, check=True, capture_output=True, text=True)
        return Path(json.loads(result.stdout)["GoMod"]).read_text()

    def run(self, args: list[str], cwd: Path, what: str, extra_env: dict | None = None) -> None:
        started = time.monotonic()
        self._log(f"kubeplane: building {what} (go {' '.join(args[:1])}) ...")
        # An interrupted harness must not leave a `go build` running on behind it.
        result = subprocess.run([self._go, *args], cwd=cwd, env={**self._env, **(extra_env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=processes.parent_death_preexec())
        if result.returncode != 0:
            raise RuntimeError(f"building {what} failed:\n{result.stdout[-8000:]}")
        self._log(f"kubeplane: built {what} in {time.monotonic() - started:.0f}s")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
