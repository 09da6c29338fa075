"""The container image: built without an engine, pushed to a real registry, run from its root.

`deploy/image/build.py` makes the image (mmdebstrap root + the wheel, written as an OCI layout)
and records its manifest digest; here it is pushed with skopeo to Debian's docker-registry, and
the registry must serve that very digest and the config a cluster would run: labels, the
non-root user, the entrypoint, the state volume. There is no container runtime on this machine,
so the image's root is unpacked and run the way a runtime would run it, as root setting it up:
its own mount and pid namespaces (`unshare`), the root bind-mounted read-only, a tmpfs on the
state volume, `chroot` as uid 10001 with the image's environment. `serve` must get ready there.
Where buildah is installed, the Dockerfile itself is built too (`deploy/image/dockerfile.py`) and
must give the same config, and its root must run.

Cost: the first build ~2 minutes (packages and wheels downloaded), the Dockerfile's as much
again, then both are cached by commit of their inputs (`~/.cache/trigger-router/image`); warm,
this module takes ~20 s (unpacking ~400 and ~500 MB).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.registryserver import BINARY as REGISTRY, RegistryServer, free_port

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "image" / "build.py"
DOCKERFILE = REPO / "deploy" / "image" / "dockerfile.py"
APP_PATHS = ("pyproject.toml", "README.md", "router", "handlers")
# Written from README ("Container image") and the Dockerfile, not read from build.py.
VERSION = "0.1.0"
ENTRYPOINT = ["/opt/trigger-router/bin/trigger-router"]
USER = "10001:10001"
STATE = "/var/lib/trigger-router"


pytestmark = [
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed "
                       "(apt-get install mmdebstrap): the image root is made with it"),
    pytest.mark.skipif(shutil.which("skopeo") is None,
                       reason="skopeo is not installed (make registry-tools)"),
    pytest.mark.skipif(not os.access(REGISTRY, os.X_OK),
                       reason=f"{REGISTRY} is not installed (make registry-tools)"),
    pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("chroot")),
                       reason="running the unpacked root needs root, unshare and chroot"),
]


def _run(*args, timeout: float = 120, **kwargs) -> str:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    assert result.returncode == 0, (f"{args[:3]} exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-4000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def commit() -> str:
    # One commit for the whole module: others may commit while it runs, and every build and
    # push here must mean the same image.
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def image(commit) -> dict:
    # A cold build runs for minutes; its progress is in the failure message if it fails.
    return json.loads(_run(sys.executable, BUILD, "--commit", commit, timeout=1800))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = RegistryServer(tmp_path_factory.mktemp("image-registry")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pushed(image, registry, commit) -> str:
    reference = f"{registry.host}/trigger-router:{image['tag']}"
    result = json.loads(_run(sys.executable, BUILD, "--commit", commit,
                             "--push", f"{registry.host}/trigger-router"))
    assert result["pushed"]["reference"] == reference
    image["pushed_digest"] = result["pushed"]["digest"]
    return reference


@pytest.fixture(scope="module")
def config(pushed) -> dict:
    return json.loads(_run("skopeo", "inspect", "--config", "--tls-verify=false",
                           f"docker://{pushed}"))


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _manifest(layout: Path) -> dict:
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    return json.loads(_blob(layout, entry["digest"]).read_text())


def _unpack(layout: Path, root: Path) -> Path:
    """Extract the layers in order (enough to run the image: no whiteout is needed for that)."""
    for layer in _manifest(layout)["layers"]:
        _run("tar", "-xzf", _blob(layout, layer["digest"]), "-C", root)
    return root


@pytest.fixture(scope="module")
def rootfs(image, tmp_path_factory):
    layout = Path(image["layout"])
    assert len(_manifest(layout)["layers"]) == 1
    root = _unpack(layout, tmp_path_factory.mktemp("image-root"))
    yield root
    shutil.rmtree(root)  # ~400 MB; pytest would keep three runs' worth


def test_registry_serves_the_recorded_digest(image, pushed):
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    assert image["pushed_digest"] == image["digest"]
    inspected = json.loads(_run("skopeo", "inspect", "--tls-verify=false", f"docker://{pushed}"))
    assert inspected["Digest"] == image["digest"]
    raw = _run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{pushed}")
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_config_has_the_oci_labels_of_the_commit_inside(config, commit):
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert re.match(r"(https|file)://", labels["org.opencontainers.image.source"])
    revision = labels["org.opencontainers.image.revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision)
    # The revision names the app as built: no app file differs between it and the commit.
    subprocess.run(["git", "diff", "--quiet", revision, commit, "--", *APP_PATHS], cwd=REPO,
                   check=True)


def test_config_runs_serve_as_non_root_with_state_on_a_volume(config):
    settings = config["config"]
    assert settings["User"] == USER
    assert settings["Entrypoint"] == ENTRYPOINT
    assert settings["Cmd"] == ["serve"]
    assert STATE in settings["Volumes"]
    assert settings["WorkingDir"] == STATE
    env = dict(item.split("=", 1) for item in settings["Env"])
    assert env["TRIGGER_ROUTER_STATE_DIR"] == STATE
    assert env["TRIGGER_ROUTER_HTTP__HOST"] == "0.0.0.0"
    assert "8080/tcp" in settings["ExposedPorts"]
    assert (config["os"], config["architecture"]) == ("linux", "amd64")


def test_dockerfile_final_stage_says_the_same(config):
    final = (REPO / "Dockerfile").read_text().split("\nFROM ")[-1].replace("\\\n", " ")
    instructions = {}
    for line in final.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.isupper():
            instructions.setdefault(word, []).append(rest.strip())
    settings = config["config"]
    assert instructions["USER"] == [settings["User"]]
    assert json.loads(instructions["ENTRYPOINT"][0]) == settings["Entrypoint"]
    assert json.loads(instructions["CMD"][0]) == settings["Cmd"]
    assert instructions["VOLUME"] == list(settings["Volumes"])
    assert instructions["WORKDIR"] == [settings["WorkingDir"]]
    env = dict(pair.split("=", 1) for pair in " ".join(instructions["ENV"]).split())
    assert env == dict(item.split("=", 1) for item in settings["Env"])
    labels = dict(pair.split("=", 1) for pair in " ".join(instructions["LABEL"]).split())
    assert set(labels) == set(settings["Labels"]) - {"org.opencontainers.image.created"}


@pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed "
                    "(apt-get install buildah): the Dockerfile is built with it")
def test_the_dockerfile_builds_the_same_image(config, commit, tmp_path):
    built = json.loads(_run(sys.executable, DOCKERFILE, "--commit", commit, timeout=1800))
    layout = Path(built["layout"])
    theirs = json.loads(_blob(layout, _manifest(layout)["config"]["digest"]).read_text())
    for field in ("User", "Entrypoint", "Cmd", "Env", "WorkingDir", "Volumes", "ExposedPorts"):
        assert theirs["config"][field] == config["config"][field], field
    ours = config["config"]["Labels"]
    for label in ("source", "revision", "version", "title", "licenses"):
        name = f"org.opencontainers.image.{label}"
        assert theirs["config"]["Labels"][name] == ours[name], name
    (tmp_path / "root").mkdir()
    root = _unpack(layout, tmp_path / "root")
    try:
        assert _run(*_in_image(root, theirs, *ENTRYPOINT, "--help")).startswith(
            "usage: trigger-router")
        assert _run(*_in_image(root, theirs, "nats-server", "--version")).startswith(
            "nats-server: v")
    finally:
        shutil.rmtree(root)


def test_root_has_the_user_and_no_build_tools(rootfs):
    passwd = (rootfs / "etc" / "passwd").read_text()
    assert f"trigger-router:x:{USER}::{STATE}:/usr/sbin/nologin" in passwd
    state = rootfs / STATE.lstrip("/")
    assert (state.stat().st_uid, state.stat().st_gid) == (10001, 10001)
    assert not list((rootfs / "opt/trigger-router/lib").glob("python3*/site-packages/pip"))
    assert not (rootfs / "usr/lib/python3.11/ensurepip").exists()


def _in_image(root: Path, config: dict, *command: str, extra_env: dict | None = None) -> list[str]:
    """The command line that runs `command` as the image would: read-only root, tmpfs state."""
    env = [*config["config"]["Env"], *(f"{k}={v}" for k, v in (extra_env or {}).items())]
    setup = (f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
             f"mount -t tmpfs -o uid=10001,gid=10001,mode=0750 tmpfs {root}{STATE} && "
             f"mount -t proc proc {root}/proc && mount -t tmpfs tmpfs {root}/tmp && "
             f'cd / && exec env -i "$@"')
    return ["unshare", "--mount", "--pid", "--fork", "--", "sh", "-c", setup, "sh", *env,
            "chroot", f"--userspec={USER}", str(root), *command]


def test_console_script_and_nats_server_run_in_the_image_root(rootfs, config):
    help_text = _run(*_in_image(rootfs, config, *ENTRYPOINT, "--help"))
    assert help_text.startswith("usage: trigger-router")
    assert _run(*_in_image(rootfs, config, "nats-server", "--version")).startswith("nats-server: v")
    checked = _run(*_in_image(rootfs, config, *ENTRYPOINT, "config", "check"))
    assert f"state_dir: {STATE}" in checked


def test_serve_gets_ready_on_a_read_only_root(rootfs, config, tmp_path):
    port = free_port()
    # Loopback here: the unpacked root shares this machine's network, unlike a pod.
    command = _in_image(rootfs, config, *ENTRYPOINT, *config["config"]["Cmd"],
                        extra_env={"TRIGGER_ROUTER_HTTP__HOST": "127.0.0.1",
                                   "TRIGGER_ROUTER_HTTP__PORT": str(port)})
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"serve exited {process.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    assert json.load(answer) == {"status": "ok"}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"serve never got ready:\n{log.read_text()}"
                time.sleep(0.25)
    finally:
        processes.stop_group(process)
    assert "Traceback" not in log.read_text()
    assert "Read-only file system" not in log.read_text()


def test_layout_is_cached(image, commit):
    again = json.loads(_run(sys.executable, BUILD, "--commit", commit, timeout=120))
    assert again["digest"] == image["digest"]
    assert again["seconds"] == image["seconds"]  # the recorded build, not a new one
