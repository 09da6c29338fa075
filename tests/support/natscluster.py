"""Three real nats-servers forming one JetStream cluster on loopback, and the faults tests inflict on it.

One server cannot show what a deployment with replicated streams does when a leader dies; three
processes with routes between them, each with its own store, can. Ports (client, route, monitor)
are chosen free once and kept, so a killed node restarts on the same ports with the same store, as
a rescheduled pod with its volume would. Leaders are read where an operator would read them: the
meta leader from the monitoring port's ``/jsz``, a stream's leader from its stream info.

Every server is started with PDEATHSIG, so a test runner that dies cannot leave one behind;
``stop()`` kills and reaps all of them.

``python -m tests.support.natscluster`` starts one, prints the client URLs and runs until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import natsserver, processes
from tests.support.ports import free_ports

CLUSTER = "tr-test"


@dataclass
class Node:
    name: str
    port: int
    route_port: int
    monitor_port: int
    store: Path
    config: Path
    process: subprocess.Popen | None = None
    stopped: bool = False
    """SIGSTOPped and not yet continued."""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str, timeout: float = 2.0) -> tuple[int, dict]:
        """``(status, body)`` of a monitoring endpoint; ``(0, {})`` if the node does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=timeout) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError):
            return 0, {}

    def healthy(self) -> bool:
        """JetStream on this node is up and current with the cluster (``/healthz`` answers 200)."""
        return self.running and not self.stopped and self.monitor("/healthz")[0] == 200


@dataclass
class NatsCluster:
    root: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports = free_ports(3 * self.size)
        for i in range(self.size):
            name = f"n{i + 1}"
            node = Node(name, ports[i], ports[self.size + i], ports[2 * self.size + i],
                        self.root / name / "jetstream", self.root / name / "nats.conf")
            self.nodes.append(node)
        for node in self.nodes:
            node.store.mkdir(parents=True, exist_ok=True)
            routes = ", ".join(f'"nats-route://127.0.0.1:{other.route_port}"' for other in self.nodes if other is not node)
            node.config.write_text(
                f'server_name: "{node.name}"\nlisten: "127.0.0.1:{node.port}"\n'
                f'http: "127.0.0.1:{node.monitor_port}"\n'
                f'jetstream {{ store_dir: "{node.store}" }}\n'
                f'cluster {{ name: "{CLUSTER}", listen: "127.0.0.1:{node.route_port}", routes: [{routes}] }}\n')

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The comma-separated list ``nats.url`` takes."""
        return ",".join(self.urls)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "NatsCluster":
        for node in self.nodes:
            self._spawn(node)
        self.wait_healthy(timeout)
        return self

    def _spawn(self, node: Node) -> None:
        log = open(node.config.parent / "server.log", "ab")
        with log:  # the child keeps its own descriptor
            node.process = subprocess.Popen([natsserver.binary(), "-c", str(node.config)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=processes.die_with_parent)
        node.stopped = False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every node answers ``/healthz`` and they agree on a meta leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None and not node.stopped:
                    raise RuntimeError(f"nats-server {node.name} exited with {node.process.returncode}: "
                                       f"{self.log_tail(node)}")
            if all(node.healthy() for node in self.nodes) and self.meta_leader() is not None:
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not become healthy in time: " +
                           "; ".join(f"{n.name} healthy={n.healthy()}" for n in self.nodes))

    def stop(self) -> None:
        for node in self.nodes:
            self._reap(node)

    def leftovers(self) -> list[int]:
        """pids of servers this cluster started that still exist (the fixture asserts none)."""
        alive = []
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                os.kill(node.process.pid, 0)
            except ProcessLookupError:
                continue
            alive.append(node.process.pid)
        return alive

    def _reap(self, node: Node) -> None:
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)  # also ends a SIGSTOPped one
            node.process.wait(10)
        node.stopped = False

    # --- faults ----------------------------------------------------------------------------------

    def kill(self, name: str) -> float:
        """kill -9 the node; returns the time of the kill. Its ports and store stay reserved for it."""
        node = self.node(name)
        killed = time.time()
        self._reap(node)
        return killed

    def restart(self, name: str) -> None:
        """Start a killed node again on the same ports with the same store."""
        node = self.node(name)
        assert not node.running, f"{name} is still running"
        self._spawn(node)

    def pause(self, name: str) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing, like a VM frozen by its host."""
        node = self.node(name)
        os.kill(node.process.pid, signal.SIGSTOP)
        node.stopped = True

    def resume(self, name: str) -> None:
        node = self.node(name)
        os.kill(node.process.pid, signal.SIGCONT)
        node.stopped = False

    # --- leaders ---------------------------------------------------------------------------------

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name, as a running node's ``/jsz`` reports it."""
        for node in self.nodes:
            if node.running and not node.stopped:
                status, jsz = node.monitor("/jsz")
                leader = (jsz.get("meta_cluster") or {}).get("leader") if status == 200 else None
                if leader:
                    return leader
        return None

    def log_tail(self, node: Node, lines: int = 20) -> str:
        try:
            return "\n".join((node.config.parent / "server.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def stream_leader(js, stream: str) -> str | None:
    """The server name leading ``stream`` (its stream info's ``cluster.leader``)."""
    info = await js.stream_info(stream)
    return info.cluster.leader if info.cluster is not None else None


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m tests.support.natscluster", description=__doc__)
    parser.add_argument("--workdir", help="directory for configs, stores and logs "
                        "(default: a fresh temporary directory)")
    args = parser.parse_args(argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="tr-nats-cluster-"))
    cluster = NatsCluster(root).start()
    try:
        print(f"TRIGGER_ROUTER_NATS__URL={cluster.url}")
        print("TRIGGER_ROUTER_BUS__REPLICAS=3")
        for node in cluster.nodes:
            print(f"{node.name}: {node.url} monitor http://127.0.0.1:{node.monitor_port} store {node.store}")
        print(f"meta leader: {cluster.meta_leader()}; Ctrl-C stops the cluster", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
