"""`python -m tests.kubeplane build | tools | up | versions`: the test control plane by hand.

`build` warms the binary cache (useful before a CI run or after a version bump); `tools` builds
helm and kubectl into their own cache directory if missing and prints their paths; `up` starts the
same cluster the `kube_cluster` fixture starts, prints the admin kubeconfig path and keeps it up
until Ctrl-C, so a developer can point kubectl or the router at it; `versions` prints what would be
built and where it is cached.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from tests.kubeplane import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeplane", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="compile the binaries into the cache if missing")
    commands.add_parser("tools", help="compile helm and kubectl into the cache if missing, "
                        "print their paths")
    up = commands.add_parser("up", help="start a cluster and keep it up until interrupted")
    up.add_argument("--workdir", help="directory for certs, kubeconfig, logs and etcd data "
                    "(default: a fresh temporary directory, removed on exit)")
    commands.add_parser("versions", help="print versions, cache directory and build state")
    args = parser.parse_args(argv)

    if args.command == "versions":
        versions, tools = build.Versions(), build.ToolVersions()
        print(json.dumps({
            "kubernetes": versions.kubernetes, "etcd": versions.etcd, "kwok": versions.kwok,
            "bin_dir": str(build.bin_dir(versions)), "built": build.is_built(versions),
            "helm": tools.helm, "tools_dir": str(build.tools_dir(tools)),
            "tools_built": build.tools_built(tools),
        }, indent=2))
        return 0
    try:
        if args.command == "build":
            print(build.ensure_built())
            return 0
        if args.command == "tools":
            built = build.ensure_tools()
            print(json.dumps({"helm": str(built.helm), "kubectl": str(built.kubectl)}, indent=2))
            return 0
        return _up(args.workdir)
    except KeyboardInterrupt:
        return 130


def _up(workdir: str | None) -> int:
    from tests.kubeplane import cluster

    # SIGTERM takes the same path as Ctrl-C so the components are stopped either way.
    signal.signal(signal.SIGTERM, _interrupt)
    with cluster.LocalCluster(build.ensure_built(), workdir=workdir) as running:
        print(running.kubeconfig, flush=True)
        print(f"kubeplane: up at {running.server}; export KUBECONFIG={running.kubeconfig}; "
              "Ctrl-C stops it", file=sys.stderr, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
