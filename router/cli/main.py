"""The ``trigger-router`` command line.

``serve`` runs the service; ``events tail`` / ``events send`` talk to JetStream directly (the
configured NATS, or the embedded server that a local ``serve`` started); ``config check`` validates
a configuration (and the rule files it names) and prints the effective settings with secrets
redacted. Errors print one line naming what is wrong and exit 2; nothing prints a traceback for a
user mistake. ``--version`` is the installed package's version, or ``<version>+source`` when run
from a checkout that is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import Sequence

import yaml

from router import errors
from router.config import logs
from router.config import settings as settings_mod
from router.config.settings import Settings
from router.model import events
from router.plugins import catalog

EXIT_USAGE = 2


def version() -> str:
    try:
        return importlib.metadata.version("trigger-router")
    except importlib.metadata.PackageNotFoundError:
        # A checkout run with ``python -m router.cli``: the version it declares, marked as such.
        try:
            import tomllib
            declared = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["version"]
        except (OSError, KeyError, ValueError):
            declared = "0"
        return f"{declared}+source"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trigger-router",
        description="Route CI, registry and Kubernetes events to post-deploy verification.",
    )
    parser.add_argument("--config", "-c", help="YAML config file (default: $TRIGGER_ROUTER_CONFIG, "
                        "else built-in defaults); every field can be overridden by "
                        "TRIGGER_ROUTER_<SECTION>__<FIELD>")
    parser.add_argument("--version", action="version", version=f"trigger-router {version()}")
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

    rules_cmd = commands.add_parser("rules", help="validate and dry-run trigger rules")
    rules_sub = rules_cmd.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    validate = rules_sub.add_parser("validate", help="check rule files; exit 2 with file, rule and field on error")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="rule files, directories or globs")
    test = rules_sub.add_parser("test", help="which rules match an event, why the others do not, and "
                                "the rendered actions")
    test.add_argument("paths", nargs="+", metavar="PATH")
    test.add_argument("--event", "-e", required=True, help="CloudEvent JSON file (structured format), or -; "
                      "with --github, --gitlab or --registry: the raw webhook payload")
    kind = test.add_mutually_exclusive_group()
    kind.add_argument("--github", metavar="EVENT", help="the file is a GitHub webhook payload of this "
                      "X-GitHub-Event (push, workflow_run, ...)")
    kind.add_argument("--gitlab", action="store_true", help="the file is a GitLab webhook payload (its "
                      "object_kind names the event)")
    kind.add_argument("--registry", metavar="NAME", help="the file is the webhook payload of this registry "
                      "source: acr, distribution, dockerhub, ecr, gar, harbor, quay (tags are resolved to "
                      "digests as the edge does, with the configured credentials)")
    test.add_argument("--delivery", metavar="ID", help="the delivery id (X-GitHub-Delivery, GitLab's "
                      "Idempotency-Key); default: rules-test-<hash of the payload>")
    test.add_argument("--expect-match", action="store_true", help="exit 1 when no rule matches")
    test.add_argument("--json", action="store_true", help="machine-readable report")
    test.epilog = ("Webhook payloads are converted by the registered webhook source, exactly as "
                   "POST /webhooks/<source> would, so every event the edge would store (derived CDEvents "
                   "included) is tested; authentication (signatures, tokens, secrets) is skipped.")

    runs_cmd = commands.add_parser("runs", help="inspect runs")
    runs_sub = runs_cmd.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    runs_list = runs_sub.add_parser("list", help="every known run with its state and outcome")
    runs_list.add_argument("--rule", help="only runs of this rule")
    runs_list.add_argument("--outcome", help="only runs that ended so: success, failure, error, cancel")
    runs_list.add_argument("--since", metavar="WHEN", help="only runs queued since: a duration ago (90m, 1h, "
                           "2d) or an RFC 3339 time (2026-12-01T16:00:00Z)")
    runs_list.add_argument("--limit", "-n", type=int, metavar="N", help="only the newest N")
    runs_list.add_argument("--wide", "-w", action="store_true", help="untruncated ids, rules and events")
    runs_list.add_argument("--json", action="store_true", help="one JSON object per line")
    runs_show = runs_sub.add_parser("show", help="one run in full: params, checks, timings")
    runs_show.add_argument("run_id", metavar="RUN_ID")
    runs_retry = runs_sub.add_parser("retry", help="queue a dead-lettered run (outcome error) again as a new run")
    runs_retry.add_argument("run_id", metavar="RUN_ID")

    outcomes_cmd = commands.add_parser("outcomes", help="watch run outcomes (CDEvents testsuiterun.*)")
    outcomes_sub = outcomes_cmd.add_subparsers(dest="outcomes_command", required=True, metavar="SUBCOMMAND")
    outcomes_tail = outcomes_sub.add_parser("tail", help="print outcomes as they are published")
    outcomes_tail.add_argument("--json", action="store_true", help="one JSON object per line")
    outcomes_tail.add_argument("--all", action="store_true", help="start from the oldest stored outcome")
    outcomes_tail.add_argument("--count", "-n", type=int, default=0, help="exit after this many outcomes")
    outcomes_tail.add_argument("--wide", "-w", action="store_true", help="untruncated rule names and run ids")

    functions_cmd = commands.add_parser("functions", help="run in-process functions (action: function) locally")
    invoke = functions_cmd.add_subparsers(dest="functions_command", required=True, metavar="SUBCOMMAND").add_parser(
        "invoke", help="run REF on an event exactly as the router would and print the outcome (exit 1 unless success)")
    invoke.add_argument("ref", metavar="REF", help="package.module:callable, found on functions.paths or installed")
    invoke.add_argument("--event", "-e", required=True, help="CloudEvent JSON file (structured format), or -")
    invoke.add_argument("--params", help="ctx.params as a JSON object")
    invoke.add_argument("--timeout", type=float, default=300.0, help="seconds per attempt (policy.timeout; 300)")
    invoke.add_argument("--retries", type=int, default=0, help="retries of a TemporaryError (policy.retry.limit; 0)")
    invoke.add_argument("--config", "-c", default=argparse.SUPPRESS, help="as before the command")
    invoke.add_argument("--rule", default="functions-invoke", help="rule name the run id is derived from")
    invoke.add_argument("--json", action="store_true", help="the outcome as JSON")

    commands.add_parser("crd", help="print the TriggerRule and ClusterTriggerRule CustomResourceDefinitions "
                        "(YAML) for the installed actions")

    config_cmd = commands.add_parser("config", help="inspect configuration")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    config_sub.add_parser("check", help="validate the config and the rules it names (rules.paths, reported like "
                          "`rules validate`) and print the effective settings, secrets redacted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redact = logs.Redactor()
    try:
        catalog.load()  # plug-ins register their settings sections before the file is validated
        settings = settings_mod.load(args.config)
        redact = logs.configure(settings.log, logs.secret_values(settings))
        catalog.load().configure(settings)  # finders and reporters are called without settings
        return _dispatch(args, settings)
    except errors.TriggerRouterError as exc:
        print(f"trigger-router: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `trigger-router config check | head`: the reader left; no traceback, and no second
        # BrokenPipeError when the interpreter flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from router.cli import serve as service
        service.run(settings)
        return 0
    if args.command == "crd":
        from router.rules import crd
        sys.stdout.write(crd.render(catalog.load().actions))
        return 0
    if args.command == "config":
        yaml.safe_dump(settings_mod.redacted(settings), sys.stdout, sort_keys=False)
        if not settings.rules.paths:
            return 0
        from router.cli import rules as rule_commands
        sys.stdout.flush()
        return rule_commands.report_problems(rule_commands.check(settings.rules.paths, settings))
    if args.command == "functions":
        from router.cli import functions
        return functions.invoke(args.ref, args.event, args.params, args.json, settings, rule=args.rule,
                                timeout=args.timeout, retries=args.retries)
    if args.command == "rules":
        from router.cli import rules as rule_commands
        if args.rules_command == "validate":
            return rule_commands.validate(args.paths, settings)
        return rule_commands.test(args.paths, args.event, args.json, settings, expect_match=args.expect_match,
                                  github=args.github, gitlab=args.gitlab, registry=args.registry,
                                  delivery=args.delivery)
    from router.cli import events as tail_send
    from router.cli import runs as run_commands
    if args.command == "runs":
        if args.runs_command == "list":
            return asyncio.run(run_commands.list_runs(settings, args.json, select=run_commands.Selection.of(args),
                                                      wide=args.wide))
        if args.runs_command == "retry":
            return asyncio.run(run_commands.retry_run(settings, args.run_id))
        return asyncio.run(run_commands.show_run(settings, args.run_id))
    if args.command == "outcomes":
        return asyncio.run(tail_send.tail(settings, subject=None, as_json=args.json, from_start=args.all,
                                          count=args.count, outcomes=True, wide=args.wide))
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
