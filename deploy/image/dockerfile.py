"""Build the Dockerfile itself with buildah, daemonless, so the engine recipe is proven to work.

`build.py` makes the image these machines use; this script checks that the Dockerfile, the
recipe for machines with an engine, builds and says the same. Two things stand in the way here:

- Its base, `debian:bookworm-slim`, lives in a container registry these machines cannot reach.
  `mmdebstrap` makes a bookworm minbase root (with the same documentation excludes as the slim
  image) and buildah stores it under that name in a private storage, so `FROM` finds it with
  `--pull=never`.
- No engine, no kernel overlay for an unprivileged store: buildah runs as root with the `vfs`
  storage driver and `--isolation chroot` (no runc needed), in a storage directory of its own
  that is removed after the build.

The `RUN` steps reach the package mirrors; a build-only apt setting (Release files past their
Valid-Until date are accepted, as the host does) and the host's CA bundle for pip are mounted
for the build only and never enter a layer. The result is pushed to an OCI layout cached under
`~/.cache/trigger-router/image/dockerfile-<version>-<key>/` (key: the committed Dockerfile,
.dockerignore and app trees, this script), with its digest and build time in `image.json`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("image_build", Path(__file__).with_name("build.py"))
image_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_build)

CONTEXT_PATHS = ("Dockerfile", ".dockerignore", *image_build.APP_PATHS)
BASE = f"docker.io/library/debian:{image_build.SUITE}-slim"


def required_tools() -> dict[str, str | None]:
    return {tool: shutil.which(tool) for tool in ("buildah", "mmdebstrap", "git")}


def ensure_image(log=None, commit: str = "HEAD") -> dict:
    """Return the Dockerfile image of `commit` (its `image.json` plus `layout`), built if needed."""
    log = log or image_build._stderr
    missing = [tool for tool, path in required_tools().items() if path is None]
    if missing:
        raise RuntimeError(f"building the Dockerfile needs {', '.join(missing)} "
                           "(apt-get install buildah mmdebstrap)")
    wanted = image_build.describe(commit)
    trees = image_build._git("rev-parse",
                             *(f"{wanted['commit']}:{path}" for path in CONTEXT_PATHS)).split()
    key = hashlib.sha256("\n".join(
        [*trees, hashlib.sha256(Path(__file__).read_bytes()).hexdigest(), wanted["source"]]
    ).encode()).hexdigest()[:16]
    home = image_build.cache_root() / f"dockerfile-{wanted['version']}-{key}"
    if not (home / image_build.INFO).is_file():
        home.parent.mkdir(parents=True, exist_ok=True)
        with open(home.parent / f".{home.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (home / image_build.INFO).is_file():
                _build(wanted, home, log)
    return {**json.loads((home / image_build.INFO).read_text()), "layout": str(home / "oci")}


def _build(wanted: dict, home: Path, log) -> None:
    started = time.monotonic()
    with image_build.staging(home) as work:
        buildah = ["buildah", "--root", str(work / "storage"), "--runroot", str(work / "run"),
                   "--storage-driver", "vfs"]
        context = work / "context"
        context.mkdir()
        archive = subprocess.run(["git", "archive", "--format=tar", wanted["commit"], "--",
                                  *CONTEXT_PATHS],
                                 cwd=image_build.REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(context)], input=archive, check=True)

        base = work / "base.tar"
        image_build._run(["mmdebstrap", "--quiet", "--variant=minbase",
                          "--aptopt=Acquire::Check-Valid-Until \"false\"",
                          *(f"--dpkgopt={option}" for option in image_build._DPKG_OPTS),
                          image_build.SUITE, str(base)], "mmdebstrap (the base image)", log)
        container = _output([*buildah, "from", "scratch"])
        _output([*buildah, "add", container, str(base), "/"])
        _output([*buildah, "commit", "--quiet", container, BASE])
        _output([*buildah, "rm", container])
        base.unlink()

        (work / "apt.conf").write_text('Acquire::Check-Valid-Until "false";\n')
        mounts = ["-v", f"{work / 'apt.conf'}:/etc/apt/apt.conf.d/99build-only:ro"]
        host_ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
        if Path(host_ca).is_file():
            (work / "pip.conf").write_text("[global]\ncert = /run/build-only-ca.crt\n")
            mounts += ["-v", f"{host_ca}:/run/build-only-ca.crt:ro",
                       "-v", f"{work / 'pip.conf'}:/etc/pip.conf:ro"]
        tag = f"localhost/trigger-router:{wanted['version']}"
        image_build._run([*buildah, "bud", "--pull=never", "--isolation", "chroot",
                          "--network", "host", "--layers=false", *mounts,
                          "--build-arg", f"VERSION={wanted['version']}",
                          "--build-arg", f"REVISION={wanted['revision']}",
                          "--build-arg", f"SOURCE={wanted['source']}",
                          "--tag", tag, str(context)], "buildah bud (the Dockerfile)", log)
        layout = work / "oci"
        _output([*buildah, "push", "--quiet", tag, f"oci:{layout}:{wanted['version']}"])
        (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
        info = {"tag": wanted["version"], "digest": entry["digest"],
                "revision": wanted["revision"], "seconds": round(time.monotonic() - started, 1)}
        for scratch in ("storage", "run", "context"):
            shutil.rmtree(work / scratch, ignore_errors=True)
        image_build.settle(work, home, info)
    log(f"image: Dockerfile built {info['digest']} in {info['seconds']}s")
    image_build._prune(home.parent, "dockerfile-*", keep=image_build.KEEP)


def _output(command: list[str]) -> str:
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command[:6])} failed: {result.stderr[-3000:]}")
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/image/dockerfile.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="HEAD", help="the commit to build (default: HEAD)")
    args = parser.parse_args(argv)
    try:
        info = ensure_image(commit=args.commit)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"image: {error}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
