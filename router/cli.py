"""The ``trigger-router`` command line.

``serve`` runs the service; ``events tail`` / ``events send`` talk to JetStream directly (the
configured NATS, or the embedded server that a local ``serve`` started); ``config check`` validates
a configuration and prints the effective settings with secrets redacted. Errors print one line
naming what is wrong and exit 2; nothing prints a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Sequence

import yaml

from router import errors, events, logs, settings as settings_mod
from router.settings import Settings

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trigger-router",
        description="Route CI, registry and Kubernetes events to post-deploy verification.",
    )
    parser.add_argument("--config", "-c", help="YAML config file (default: $TRIGGER_ROUTER_CONFIG, "
                        "else built-in defaults); every field can be overridden by "
                        "TRIGGER_ROUTER_<SECTION>__<FIELD>")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("serve", help="run the HTTP edge and the bus (embedded NATS unless nats.url is set)")

    events_cmd = commands.add_parser("events", help="watch or publish CloudEvents on the bus")
    events_sub = events_cmd.add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")
    tail = events_sub.add_parser("tail", help="print events from the events stream as they arrive")
    tail.add_argument("--subject", "-s", help="NATS subject filter below the events subject, e.g. "
                      "'com.github.>' (default: everything)")
    tail.add_argument("--json", action="store_true", help="one JSON object per line with all attributes and data")
    tail.add_argument("--all", action="store_true", help="start from the oldest stored event, not from now")
    tail.add_argument("--count", "-n", type=int, default=0, help="exit after this many events (default: run until Ctrl-C)")
    send = events_sub.add_parser("send", help="publish a CloudEvent JSON document (an object or a batch array)")
    send.add_argument("file", help="path to the JSON document, or - for standard input")

    config_cmd = commands.add_parser("config", help="inspect configuration")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    config_sub.add_parser("check", help="validate the config and print the effective settings, secrets redacted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_mod.load(args.config)
        logs.configure(settings.log)
        return _dispatch(args, settings)
    except errors.TriggerRouterError as exc:
        print(f"trigger-router: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from router import service
        asyncio.run(service.serve(settings))
        return 0
    if args.command == "config":
        yaml.safe_dump(settings_mod.redacted(settings), sys.stdout, sort_keys=False)
        return 0
    from router import tail_send
    if args.events_command == "tail":
        return asyncio.run(tail_send.tail(settings, subject=args.subject, as_json=args.json,
                                          from_start=args.all, count=args.count))
    return asyncio.run(tail_send.send(settings, _read_document(args.file)))


def _read_document(path: str) -> list[events.CloudEvent]:
    try:
        body = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        stripped = body.lstrip()
        return events.parse_batch(body) if stripped[:1] == b"[" else [events.parse_structured(body)]
    except errors.BadRequest as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise errors.ConfigError(f"{path}: {exc.detail}{field}") from exc


if __name__ == "__main__":
    sys.exit(main())
