"""Run Argo Events' GitHub EventSource and a Sensor as two plain processes, without Kubernetes.

In a cluster the controller turns EventSource/Sensor objects into Deployments whose containers run
``argo-events eventsource-service`` / ``sensor-service`` with the object in the environment. This
module does the controller's part by hand. What each piece needs was read in the v1.9.11 source:

- ``cmd/commands/eventsource.go``, ``sensor.go``: the two subcommands call
  ``pkg/eventsources/cmd/start.go`` and ``pkg/sensors/cmd/start.go`` ``Start()``, which read
  ``EVENTSOURCE_OBJECT`` / ``SENSOR_OBJECT`` (base64 of the object's JSON, required),
  ``EVENTBUS_CONFIG`` (base64 of a ``BusConfig`` JSON, ``{"jetstream": {...}}``),
  ``EVENTBUS_SUBJECT`` (required, unused by JetStream) and ``POD_NAME`` (required; client ids).
- The eventsource builds no Kubernetes client. The sensor does, unconditionally
  (``sharedutil.GetClientConfig``: ``KUBECONFIG`` or in-cluster config, then
  ``kubernetes.NewForConfigOrDie``), but only resource triggers call it; a kubeconfig naming an
  unused loopback port satisfies it and nothing ever connects.
- Leader election (``pkg/shared/leaderelection``): with a JetStream bus and ``LEADER_ELECTION``
  unset it is graft (Raft over NATS, log at ``/tmp/graft.log``), not a Kubernetes Lease. The
  sensor always elects (``pkg/sensors/listener.go`` ``Start``), one replica wins alone; the
  eventsource elects only for ``RecreateStrategyEventSources`` (``const.go``), which exclude
  ``github``, so it just runs.
- Bus (``pkg/eventbus/jetstream/base/jetstream.go``): ``JetStreamConfig`` is ``url``,
  ``accessSecret`` (optional; none = no auth), ``streamConfig`` (YAML: maxMsgs, maxAge, maxBytes,
  replicas, duplicates, retention, discard) and ``tls``. The client *always* adds
  ``nats.Secure(InsecureSkipVerify)`` when ``tls`` is unset, so a plaintext nats-server is refused
  (``nats: secure connection not available``): the shared server offers TLS with
  ``allow_non_tls`` (trigger-router stays on plaintext). Stream ``default``, subjects
  ``default.<eventsource>.<event>``, ``Nats-Msg-Id`` = a random UUID per webhook.
- GitHub source (``pkg/eventsources/sources/github/start.go``): hooks are registered through the
  GitHub API only when ``apiToken`` or ``githubApp`` is set (``NeedToCreateHooks``); without them
  it only serves the webhook. ``webhookSecret`` is checked with go-github ``ValidatePayload``
  (``X-Hub-Signature-256``). Secrets are files at ``/argo-events/secrets/<name>/<key>``
  (``pkg/shared/util`` ``GetSecretVolumePath``, a fixed path), so the secret is written there
  under a per-run name and removed afterwards. ``X-GitHub-Delivery`` is copied into the body.
- The webhook server (``pkg/eventsources/common/webhook``) binds ``:<port>`` (all interfaces, not
  configurable) and serves ``/health``; it answers 200 only after the JetStream publish was
  acknowledged, and one goroutine per route publishes, one webhook at a time.
- Sensor (``pkg/eventbus/jetstream/sensor/trigger_conn.go``): a durable pull consumer,
  ``DeliverNew``, ``Fetch(1)`` per message, ``AckSync`` after the trigger ran (``atLeastOnce``)
  or at once with the trigger in a goroutine (default). HTTP trigger
  (``pkg/sensors/triggers/http/http.go``): payload built from ``payload`` parameters (gjson
  ``dataKey``), POST, default timeout 60 s.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support import processes

SECRETS_ROOT = Path("/argo-events/secrets")
"""Where Argo reads every secret from (a compile-time path)."""
EVENTSOURCE, EVENT, SENSOR = "github", "push", "bench-sensor"
STREAM_CONFIG = "maxMsgs: 1000000\nmaxAge: 1h\nmaxBytes: -1\nreplicas: 1\nduplicates: 300s\n"
"""The controller's default stream settings, with one replica for one server."""

_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def nats_tls_config(directory: Path) -> Path:
    """A nats-server config offering TLS beside plaintext (Argo insists on TLS, see above)."""
    from tests.kubeplane import pki  # a serving pair for 127.0.0.1; Argo skips verification
    files = pki.write(directory, "127.0.0.1")
    conf = directory / "nats-tls.conf"
    conf.write_text(f'tls {{\n  cert_file: "{files["apiserver.crt"]}"\n'
                    f'  key_file: "{files["apiserver.key"]}"\n}}\nallow_non_tls: true\n')
    return conf


def bus_config(nats_url: str) -> dict:
    return {"jetstream": {"url": nats_url, "streamConfig": STREAM_CONFIG}}


def eventsource_object(port: int, secret_name: str) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
        "metadata": {"name": EVENTSOURCE, "namespace": "bench"},
        "spec": {"github": {EVENT: {
            "repositories": [{"owner": "bench", "names": ["web"]}],
            "webhook": {"endpoint": "/push", "port": str(port), "method": "POST", "url": ""},
            "webhookSecret": {"name": secret_name, "key": "secret"},
            "events": ["push"], "contentType": "json",
        }}},
    }


def sensor_object(sink_url: str, at_least_once: bool) -> dict:
    """One dependency on the push event, one HTTP trigger posting the delivery id to the sink."""
    delivery = {"src": {"dependencyName": EVENT, "dataKey": "body.X-GitHub-Delivery"},
                "dest": "delivery"}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": {"name": SENSOR, "namespace": "bench"},
        "spec": {
            "replicas": 1,
            "dependencies": [{"name": EVENT, "eventSourceName": EVENTSOURCE, "eventName": EVENT}],
            "triggers": [{
                "template": {"name": "sink", "http": {
                    "url": sink_url, "method": "POST", "payload": [delivery], "timeout": 10,
                    "headers": {"Content-Type": "application/json"}}},
                "atLeastOnce": at_least_once,
            }],
        },
    }


def encode(obj: dict) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


class ArgoEvents:
    """The eventsource and the sensor, each in its own process group, logs under ``work``."""

    def __init__(self, binary: Path, nats_url: str, sink_url: str, secret: str, work: Path,
                 port: int, at_least_once: bool = False) -> None:
        self.binary, self.nats_url, self.sink_url = binary, nats_url, sink_url
        self.secret, self.work, self.port = secret, work, port
        self.at_least_once = at_least_once
        self.secret_name = f"trbench-{os.getpid()}"
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self) -> None:
        secret_dir = SECRETS_ROOT / self.secret_name
        try:
            secret_dir.mkdir(parents=True, exist_ok=True)
            (secret_dir / "secret").write_text(self.secret)
        except OSError as exc:
            raise RuntimeError(f"Argo reads its webhook secret only from {SECRETS_ROOT}/<name>/<key>, "
                               f"which this user cannot write: {exc}") from exc
        kubeconfig = self.work / "kubeconfig"
        kubeconfig.write_text(_KUBECONFIG)
        common = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_LEVEL": "warn",
                  "EVENTBUS_CONFIG": encode(bus_config(self.nats_url)),
                  "EVENTBUS_SUBJECT": "eventbus-bench"}
        self._spawn("eventsource", "eventsource-service", {
            **common, "POD_NAME": "bench-eventsource-0",
            "EVENTSOURCE_OBJECT": encode(eventsource_object(self.port, self.secret_name))})
        self._spawn("sensor", "sensor-service", {
            **common, "POD_NAME": "bench-sensor-0", "KUBECONFIG": str(kubeconfig),
            "SENSOR_OBJECT": encode(sensor_object(self.sink_url, self.at_least_once))})

    def _spawn(self, name: str, command: str, env: dict[str, str]) -> None:
        with open(self.work / f"argo-{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(self.binary), command], env=env, cwd=self.work, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=processes.die_with_parent)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"argo {name} exited with {process.returncode}:\n"
                                   + self.log_tail(name))

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.work / f"argo-{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_errors(self) -> dict[str, int]:
        """Error-level log lines per process (a dropped event shows up here, if anywhere)."""
        counts = {}
        for name in self.processes:
            try:
                text = (self.work / f"argo-{name}.log").read_text(errors="replace")
            except OSError:
                text = ""
            counts[name] = sum('"level":"error"' in line and "signature check failed" not in line
                               for line in text.splitlines())  # the forgery probe is expected
        return counts

    def stop(self) -> None:
        for process in self.processes.values():
            processes.stop_group(process, grace=10.0)
        secret_dir = SECRETS_ROOT / self.secret_name
        shutil.rmtree(secret_dir, ignore_errors=True)
        for empty in (SECRETS_ROOT, SECRETS_ROOT.parent):  # leave the host as it was
            try:
                empty.rmdir()
            except OSError:
                break
