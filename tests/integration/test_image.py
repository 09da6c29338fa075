"""The container image: built without an engine, pushed to a real registry, run from its root.

`deploy/image/build.py` makes the image (mmdebstrap root + the wheel, written as an OCI layout)
and records its manifest digest; here it is pushed with skopeo to Debian's docker-registry, and
the registry must serve that very digest and the config a cluster would run: labels, the
non-root user, the entrypoint, the state volume. There is no container runtime on this machine,
so the image's root is unpacked and run the way a runtime would run it, as root setting it up:
its own mount and pid namespaces (`unshare`), the root bind-mounted read-only, a tmpfs on the
state volume, `chroot` as uid 10001 with the image's environment. `serve` must get ready there.

Cost: the first build ~2 minutes (packages and wheels downloaded), then cached by commit of the
app's files (`~/.cache/trigger-router/image`); warm, this module takes ~20 s (unpacking ~420 MB).
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
def image() -> dict:
    # A cold build runs for minutes; its progress is in the failure message if it fails.
    return json.loads(_run(sys.executable, BUILD, timeout=1800))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = RegistryServer(tmp_path_factory.mktemp("image-registry")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pushed(image, registry) -> str:
    reference = f"{registry.host}/trigger-router:{image['tag']}"
    result = json.loads(_run(sys.executable, BUILD, "--push", f"{registry.host}/trigger-router"))
    assert result["pushed"]["reference"] == reference
    image["pushed_digest"] = result["pushed"]["digest"]
    return reference


@pytest.fixture(scope="module")
def config(pushed) -> dict:
    return json.loads(_run("skopeo", "inspect", "--config", "--tls-verify=false",
                           f"docker://{pushed}"))


@pytest.fixture(scope="module")
def rootfs(image, tmp_path_factory) -> Path:
    layout = Path(image["layout"])
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())
    (layer,) = manifest["layers"]
    root = tmp_path_factory.mktemp("image-root")
    _run("tar", "-xzf", layout / "blobs" / "sha256" / layer["digest"][7:], "-C", root)
    return root


def test_registry_serves_the_recorded_digest(image, pushed):
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    assert image["pushed_digest"] == image["digest"]
    inspected = json.loads(_run("skopeo", "inspect", "--tls-verify=false", f"docker://{pushed}"))
    assert inspected["Digest"] == image["digest"]
    raw = _run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{pushed}")
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_config_has_the_oci_labels_of_the_commit_inside(config):
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert re.match(r"(https|file)://", labels["org.opencontainers.image.source"])
    revision = labels["org.opencontainers.image.revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision)
    # The revision names the app as committed now: no app file differs between it and HEAD.
    subprocess.run(["git", "diff", "--quiet", revision, "HEAD", "--", *APP_PATHS], cwd=REPO,
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


def test_layout_is_cached(image):
    again = json.loads(_run(sys.executable, BUILD, timeout=120))
    assert again["digest"] == image["digest"]
    assert again["seconds"] == image["seconds"]  # the recorded build, not a new one
