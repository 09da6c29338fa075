"""Start, wait for and stop one local control plane: etcd, apiserver, controllers, scheduler, kwok.

Everything listens on free 127.0.0.1 ports and lives in one work directory (certificates,
kubeconfigs, etcd data, one log file per component); `processes` makes sure no component
outlives the harness.

Credentials are deliberately simple and static: one CA serves as server CA, client CA, CSR
signing CA and root CA for ServiceAccounts; people and controllers authenticate with tokens from
--token-auth-file; ServiceAccount tokens are signed with a generated key so the TokenRequest API
works as in a real cluster.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.kubeplane import pki, processes
from tests.support.ports import free_ports as _free_ports

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
NODE_NAME = "kwok-node-0"
STAGES = Path(__file__).with_name("stages.yaml")
# Users in --token-auth-file: name -> groups. The built-in RBAC bindings for the controller
# manager and scheduler users apply as in kubeadm clusters; kwok plays every kubelet at once, so
# it gets the admin group rather than a per-node identity the Node authorizer would confine.
_USERS = {
    "kubeplane-admin": "system:masters",
    "system:kube-controller-manager": "",
    "system:kube-scheduler": "",
    "kwok-controller": "system:masters",
}


class StartupError(RuntimeError):
    """A component exited or never became ready; the message carries the tail of its log."""


class LocalCluster:
    """A running control plane; a context manager, or call start()/stop() yourself."""

    def __init__(self, bin_dir: Path, workdir: str | os.PathLike | None = None, log=None) -> None:
        self.bin_dir = Path(bin_dir)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubeplane-"))
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._procs: dict[str, subprocess.Popen] = {}
        self.admin_token = ""
        self.server = ""
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self.etcd_url = ""

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items()}

    def start(self, timeout: float = 120.0) -> None:
        processes.on_exit(self, self.stop)
        started = time.monotonic()
        for attempt in range(3):
            try:
                self._start(deadline=time.monotonic() + timeout)
                break
            except StartupError as error:
                # Free ports are picked, then bound by the component a moment later; another
                # process may take one in between. Rare enough that trying again suffices.
                self._stop_components()
                if "address already in use" not in str(error) or attempt == 2:
                    self.stop()
                    raise
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
            except BaseException:
                self.stop()
                raise
        self._log(f"kubeplane: control plane ready at {self.server} in "
                  f"{time.monotonic() - started:.1f}s (workdir {self.workdir})")

    def _start(self, deadline: float) -> None:
        pki_dir = self.workdir / "pki"
        files = pki.write(pki_dir, service_ip=str(ipaddress.ip_network(SERVICE_CIDR)[1]))
        tokens = {user: secrets.token_urlsafe(32) for user in _USERS}
        self.admin_token = tokens["kubeplane-admin"]
        (pki_dir / "tokens.csv").write_text("".join(
            f'{tokens[user]},{user},{user},"{groups}"\n' for user, groups in _USERS.items()))
        etcd_port, peer_port, api_port = _free_ports(3)
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://127.0.0.1:{api_port}"
        for user, token in tokens.items():
            path = self.kubeconfig if user == "kubeplane-admin" else pki_dir / f"{user}.kubeconfig"
            path.write_text(kubeconfig(self.server, files["ca.crt"].read_bytes(), token, user))
        kubeconfigs = {u: str(pki_dir / f"{u}.kubeconfig") for u in _USERS}

        self._spawn("etcd", [
            "--name=kubeplane", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=kubeplane=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ])
        self._wait("etcd", deadline, lambda: _http_ok(f"{self.etcd_url}/health"))
        self._spawn("kube-apiserver", [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={api_port}",
            # The apiserver publishes its advertise address in the `kubernetes` EndpointSlice and
            # refuses loopback addresses there. Nothing in or out of this cluster reaches the
            # apiserver through that Service (every client connects to 127.0.0.1 directly), so
            # the reconciler is switched off instead of advertising some other address.
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--tls-cert-file={files['apiserver.crt']}",
            f"--tls-private-key-file={files['apiserver.key']}",
            f"--client-ca-file={files['ca.crt']}",
            f"--token-auth-file={pki_dir / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={files['sa.pub']}",
            f"--service-account-signing-key-file={files['sa.key']}",
            # Without the watch cache every watch is an etcd watch, so compact_etcd() makes any
            # older resourceVersion answer 410 Gone at once, for every resource. (The cache
            # would serve old versions from memory until its event window rolls over, which a
            # test cannot force.) The price: no watch bookmarks, which clients must not rely on.
            "--watch-cache=false",
            "--profiling=false", "--v=1",
        ])
        self._wait("kube-apiserver", deadline, lambda: self._api_ok("/readyz"))
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={kubeconfigs['system:kube-controller-manager']}",
            "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
            f"--service-account-private-key-file={files['sa.key']}",
            f"--root-ca-file={files['ca.crt']}",
            f"--cluster-signing-cert-file={files['ca.crt']}",
            f"--cluster-signing-key-file={files['ca.key']}",
            "--use-service-account-credentials=true", "--controllers=*", "--v=1",
        ])
        self._spawn("kube-scheduler", [
            f"--kubeconfig={kubeconfigs['system:kube-scheduler']}",
            "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false", "--v=1",
        ])
        self._spawn("kwok", [
            f"--kubeconfig={kubeconfigs['kwok-controller']}", f"--config={STAGES}",
            # Node IP 127.0.0.1: should anything (logs, exec) dial the "kubelet", it stays on
            # loopback and is refused, rather than going to some address off this machine.
            "--manage-all-nodes=true", f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1",
        ], env={"HOME": str(self.workdir)})  # keep a developer's ~/.kwok/kwok.yaml out of it
        self._api("POST", "/api/v1/nodes", _fake_node())
        self._wait("kwok", deadline, self._node_ready)
        self._wait("kube-controller-manager", deadline, lambda: self._api_ok(
            "/api/v1/namespaces/default/serviceaccounts/default"))
        (self.workdir / "pids.json").write_text(json.dumps(self.pids))

    def stop(self) -> None:
        """Stop every component, newest first, and remove the work directory if it is ours."""
        self._stop_components()
        processes.forget(self)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_components(self) -> None:
        for name in reversed(list(self._procs)):
            processes.terminate(self._procs.pop(name))

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision (as the apiserver does every few minutes).

        Uses etcd's JSON gateway; returns the revision compacted at. Watches and lists at
        resourceVersions older than that can only be answered with 410 Gone afterwards.
        """
        header = _post_json(f"{self.etcd_url}/v3/kv/range", {"key": _b64(b"/")})["header"]
        revision = int(header["revision"])
        _post_json(f"{self.etcd_url}/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> None:
        self._procs[name] = processes.spawn([str(self.bin_dir / name), *args],
                                            self.workdir / f"{name}.log", self.workdir, env)

    def _wait(self, name: str, deadline: float, ready) -> None:
        while True:
            for component, proc in self._procs.items():
                if proc.poll() is not None:
                    raise StartupError(f"{component} exited with {proc.returncode}:\n"
                                       + self._log_tail(component))
            if ready():
                return
            if time.monotonic() > deadline:
                raise StartupError(f"timed out waiting for {name}:\n" + self._log_tail(name))
            time.sleep(0.2)

    def _log_tail(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]

    def _api(self, method: str, path: str, body: dict | None = None) -> dict:
        return json.loads(self._request(method, path, body) or b"{}")

    def _request(self, method: str, path: str, body: dict | None = None) -> bytes:
        request = urllib.request.Request(
            self.server + path, method=method, data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {self.admin_token}",
                     "Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.read()

    def _api_ok(self, path: str) -> bool:
        try:
            self._request("GET", path)
            return True
        except (OSError, urllib.error.URLError):
            return False

    def _node_ready(self) -> bool:
        try:
            node = self._api("GET", f"/api/v1/nodes/{NODE_NAME}")
        except (OSError, urllib.error.URLError):
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def kubeconfig(server: str, ca_pem: bytes, token: str, user: str = "admin") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kubeplane",
        "clusters": [{"name": "kubeplane", "cluster": {
            "server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "kubeplane", "context": {"cluster": "kubeplane", "user": user}}],
    }, indent=2)


def _fake_node() -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": NODE_NAME,
        "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", "type": "kwok"},
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}}}


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
