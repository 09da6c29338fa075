"""Build the trigger-router container image without a container engine, as an OCI image layout.

The Dockerfile at the repository root is the recipe for machines with an engine. This machine and
CI have none (only the docker client), so this script makes the image of the Dockerfile's final
stage from parts that need no daemon:

1. The app comes from a commit (`git archive HEAD`, or `--commit`), not the work tree, so the
   `org.opencontainers.image.revision` label names exactly what is inside; `pip wheel` builds it
   and fetches its dependencies' wheels.
2. `mmdebstrap` makes a Debian bookworm minbase root with python3, installs the wheels into a venv
   at /opt/trigger-router inside it (what the Dockerfile's build stage does), then removes what
   only the install needed (python3-venv, pip, setuptools, the wheels), and adds user and group
   10001 and the state directory /var/lib/trigger-router (a volume). One root instead of two
   stages: the venv's interpreter path must be the same where it is made and where it runs.
3. The root tarball becomes the one gzip layer of an OCI image layout, written here; its config
   carries the labels, the non-root user, the entrypoint and the environment.

The layout is cached under `~/.cache/trigger-router/image/<key>/` (`TRIGGER_ROUTER_IMAGE_CACHE`
overrides the parent), keyed by the committed trees of the app's paths, this script, the Debian
suite and the source label; a file lock serialises builders and a build is published by renaming
a finished temporary directory, so a half-built layout is never used. `image.json` beside the
layout records its tag, manifest digest and sizes. `--push HOST/NAME` copies it with skopeo.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
APP_PATHS = ("pyproject.toml", "README.md", "router", "handlers")
"""What the wheel is built from; a commit that changes none of them keeps the cached image."""
PREFIX = "/opt/trigger-router"
STATE_DIR = "/var/lib/trigger-router"
UID = 10001
PORT = 8080
CACHE_ENV = "TRIGGER_ROUTER_IMAGE_CACHE"
INFO = "image.json"
KEEP = 3
"""Finished images kept in the cache; older ones are removed after each build."""

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Run inside the new root by mmdebstrap, in order; "$1" is the root directory.
_HOOKS = (
    f'chroot "$1" python3 -m venv {PREFIX}',
    f'chroot "$1" {PREFIX}/bin/pip install --quiet --no-index --no-cache-dir '
    '--find-links /tmp/wheels "trigger-router[fast]"',
    f'chroot "$1" {PREFIX}/bin/pip uninstall --quiet --yes pip setuptools',
    'rm -rf "$1/tmp/wheels"',
    # Named one by one: packages given to --include are not marked automatic, so
    # --auto-remove alone would leave python3.11-venv and the pip and setuptools wheels.
    'chroot "$1" apt-get purge --quiet --yes python3-venv python3.11-venv python3-pip-whl '
    'python3-setuptools-whl',
    f'chroot "$1" groupadd --system --gid {UID} trigger-router',
    f'chroot "$1" useradd --system --uid {UID} --gid {UID} --home-dir {STATE_DIR} '
    '--no-create-home --shell /usr/sbin/nologin trigger-router',
    f'install -d -o {UID} -g {UID} -m 0750 "$1{STATE_DIR}"',
)
# Documentation and translations are dead weight in an image; copyright files stay (licences).
_DPKG_OPTS = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)


def required_tools() -> dict[str, str | None]:
    """Each Debian tool the build needs -> its path, or None when it is not installed."""
    return {tool: shutil.which(tool) for tool in ("mmdebstrap", "git")}


def cache_root() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "trigger-router" / "image"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()


def _source_url() -> str:
    try:
        url = _git("remote", "get-url", "origin")
    except subprocess.CalledProcessError:
        # No public address is known to a checkout without a remote; say where it was built.
        return f"file://{REPO}"
    if url.startswith("git@") and ":" in url:
        host, path = url[4:].split(":", 1)
        url = f"https://{host}/{path}"
    elif url.startswith("ssh://"):
        url = "https://" + url.removeprefix("ssh://").split("@", 1)[-1]
    elif "://" not in url:  # a clone of a local checkout: origin is a path
        url = f"file://{os.path.abspath(os.path.join(REPO, url))}"
    return url.removesuffix(".git")


def describe(commit: str = "HEAD") -> dict:
    """What a build of `commit` contains: version, revision, labels and the cache key."""
    commit = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    version = tomllib.loads(_git("show", f"{commit}:pyproject.toml"))["project"]["version"]
    trees = _git("rev-parse", *(f"{commit}:{path}" for path in APP_PATHS)).split()
    revision = _git("log", "-1", "--format=%H", commit, "--", *APP_PATHS)
    created = _git("log", "-1", "--format=%cI", revision)
    source = _source_url()
    key_parts = [*trees, hashlib.sha256(Path(__file__).read_bytes()).hexdigest(), SUITE,
                 platform.machine(), source]
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:16]
    return {
        "commit": commit, "version": version, "revision": revision, "created": created,
        "source": source,
        "key": f"{version}-{key}",
        "labels": {
            "org.opencontainers.image.source": source,
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.title": "trigger-router",
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.licenses": "Apache-2.0",
        },
    }


def ensure_image(log=None, rebuild: bool = False, commit: str = "HEAD") -> dict:
    """Return the image of `commit`'s `image.json` (plus `layout`), building it if not cached.

    Pass a fixed commit when several calls must mean the same image while others commit."""
    log = log or _stderr
    missing = [tool for tool, path in required_tools().items() if path is None]
    if missing:
        raise RuntimeError(f"building the image needs {', '.join(missing)} "
                           "(apt-get install mmdebstrap)")
    wanted = describe(commit)
    home = cache_root() / wanted["key"]
    dirty = _git("status", "--porcelain", "--", *APP_PATHS)
    if dirty:
        log("image: building the committed tree; uncommitted changes are not in the image:\n"
            + dirty)
    if rebuild or not (home / INFO).is_file():
        home.parent.mkdir(parents=True, exist_ok=True)
        with open(home.parent / f".{wanted['key']}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if rebuild or not (home / INFO).is_file():
                _build(wanted, home, log)
    return {**json.loads((home / INFO).read_text()), "layout": str(home / "oci")}


@contextlib.contextmanager
def staging(home: Path) -> Iterator[Path]:
    """A scratch directory beside ``home``, removed if the build in it fails: what is cached is
    only ever a finished build (``settle`` moves it into place)."""
    work = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}."))
    work.chmod(0o755)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def settle(work: Path, home: Path, info: dict) -> None:
    """Record ``info`` beside the build in ``work`` and make it ``home``, replacing an older one."""
    (work / INFO).write_text(json.dumps(info, indent=2) + "\n")
    if home.exists():
        shutil.rmtree(home)
    os.replace(work, home)


def _build(wanted: dict, home: Path, log) -> None:
    started = time.monotonic()
    with staging(home) as work:
        log(f"image: building trigger-router {wanted['version']} at {wanted['revision'][:12]} "
            f"into {home}")
        wheels = _wheels(wanted["revision"], work, log)
        rootfs = work / "rootfs.tar"
        _debian_root(wheels, rootfs, wanted["created"], log)
        info = _write_layout(work / "oci", rootfs, wanted)
        rootfs.unlink()
        shutil.rmtree(wheels)
        shutil.rmtree(work / "src")
        info["seconds"] = round(time.monotonic() - started, 1)
        settle(work, home, info)
    log(f"image: built {info['tag']} {info['digest']} in {info['seconds']}s "
        f"({info['compressed_bytes'] / 2**20:.1f} MiB compressed)")
    _prune(home.parent, f"{wanted['version']}-*", keep=KEEP)


def _prune(root: Path, pattern: str, keep: int) -> None:
    """Remove all but the `keep` newest finished images named like `pattern`: each is ~100 MB
    and a README commit changes the key (the wheel's metadata carries README)."""
    finished = sorted((d for d in root.glob(pattern) if (d / INFO).is_file()),
                      key=lambda d: (d / INFO).stat().st_mtime, reverse=True)
    for old in finished[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _wheels(revision: str, work: Path, log) -> Path:
    src, wheels = work / "src", work / "wheels"
    src.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", revision, "--", *APP_PATHS],
                             cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), f"{src}[fast]"],
         "pip wheel", log)
    return wheels


def _debian_root(wheels: Path, target: Path, created: str, log) -> None:
    command = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(_PACKAGES)}",
               # As in the host's apt configuration here: the archive served may be a snapshot
               # whose Release files are past their Valid-Until date.
               "--aptopt=Acquire::Check-Valid-Until \"false\"",
               *(f"--dpkgopt={option}" for option in _DPKG_OPTS),
               '--customize-hook=mkdir -p "$1/tmp/wheels"',
               f"--customize-hook=sync-in {wheels} /tmp/wheels",
               *(f"--customize-hook={hook}" for hook in _HOOKS),
               SUITE, str(target)]
    epoch = subprocess.run(["date", "-d", created, "+%s"], check=True, capture_output=True,
                           text=True).stdout.strip()
    _run(command, "mmdebstrap", log, env={**os.environ, "SOURCE_DATE_EPOCH": epoch})


_PACKAGES = ("python3", "python3-venv", "ca-certificates")


def _run(command: list[str], what: str, log, env: dict | None = None) -> None:
    started = time.monotonic()
    log(f"image: {what} ...")
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-6000:]}")
    log(f"image: {what} took {time.monotonic() - started:.0f}s")


def _write_layout(layout: Path, rootfs: Path, wanted: dict) -> dict:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    diff_id, compressed = hashlib.sha256(), hashlib.sha256()
    partial = blobs / ".layer.tmp"
    with open(rootfs, "rb") as source, open(partial, "wb") as sink:
        with gzip.GzipFile(fileobj=_Hashing(sink, compressed), mode="wb", mtime=0,
                           compresslevel=6) as zipped:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                diff_id.update(chunk)
                zipped.write(chunk)
    layer = {"mediaType": LAYER, "digest": f"sha256:{compressed.hexdigest()}",
             "size": partial.stat().st_size}
    os.replace(partial, blobs / compressed.hexdigest())
    config = {
        "created": wanted["created"], "architecture": "amd64", "os": "linux",
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": [f"{PREFIX}/bin/trigger-router"],
            "Cmd": ["serve"],
            "Env": [
                f"PATH={PREFIX}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", f"HOME={STATE_DIR}",
                f"TRIGGER_ROUTER_STATE_DIR={STATE_DIR}", "TRIGGER_ROUTER_HTTP__HOST=0.0.0.0",
            ],
            "WorkingDir": STATE_DIR,
            "ExposedPorts": {f"{PORT}/tcp": {}},
            "Volumes": {STATE_DIR: {}},
            "Labels": wanted["labels"],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id.hexdigest()}"]},
        "history": [{"created": wanted["created"], "created_by":
                     f"deploy/image/build.py: mmdebstrap {SUITE} minbase + trigger-router wheel"}],
    }
    config_blob = _blob(blobs, CONFIG, json.dumps(config, indent=2).encode())
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config_blob,
                "layers": [layer], "annotations": wanted["labels"]}
    manifest_blob = _blob(blobs, MANIFEST, json.dumps(manifest, indent=2).encode())
    tag = wanted["version"]
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**manifest_blob, "annotations": {"org.opencontainers.image.ref.name": tag}}]}, indent=2))
    return {"tag": tag, "digest": manifest_blob["digest"], "revision": wanted["revision"],
            "labels": wanted["labels"], "compressed_bytes": layer["size"],
            "uncompressed_bytes": rootfs.stat().st_size}


def _blob(blobs: Path, media_type: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


class _Hashing:
    """A write-only file that hashes what passes through it (the compressed layer's digest)."""

    def __init__(self, sink, digest) -> None:
        self._sink, self._digest = sink, digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._sink.write(data)

    def flush(self) -> None:
        self._sink.flush()


def push(info: dict, destination: str, *, tls_verify: bool = False) -> str:
    """`skopeo copy` the layout to `docker://destination`; returns the digest skopeo reports."""
    with tempfile.TemporaryDirectory() as tmp:
        digestfile = Path(tmp) / "digest"
        subprocess.run(["skopeo", "copy", "--quiet", f"--dest-tls-verify={str(tls_verify).lower()}",
                        "--digestfile", str(digestfile), f"oci:{info['layout']}:{info['tag']}",
                        f"docker://{destination}"], check=True)
        return digestfile.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/image/build.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="build even if the cache has it")
    parser.add_argument("--commit", default="HEAD", help="the commit to build (default: HEAD)")
    parser.add_argument("--push", metavar="HOST/NAME",
                        help="then copy it to this registry repository, tagged with the version")
    parser.add_argument("--tls-verify", action="store_true", help="verify the registry's TLS")
    args = parser.parse_args(argv)
    try:
        info = ensure_image(rebuild=args.rebuild, commit=args.commit)
        if args.push:
            info["pushed"] = {"reference": f"{args.push}:{info['tag']}",
                              "digest": push(info, f"{args.push}:{info['tag']}",
                                             tls_verify=args.tls_verify)}
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"image: {error}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
