"""The ``perdure`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from .errors import ConfigurationError, RegistrationError


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (attribute defaults to ``app``)."""
    from .app import App

    module_name, _, attr = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(
            f"{spec!r} is not a perdure.App; write MODULE:NAME, e.g. myproject.workflows:app"
        )
    return app


def _worker(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    if args.database:
        app.use_database(args.database)
    options: dict[str, Any] = {"concurrency": args.concurrency}
    if args.lease_ttl is not None:
        options["lease_ttl"] = args.lease_ttl
    if args.poll_interval is not None:
        options["poll_interval"] = args.poll_interval
    if args.no_cache:
        options["sticky_cache"] = False
    if args.worker_id:
        options["worker_id"] = args.worker_id
    if args.queues:
        options["queues"] = [name.strip() for name in args.queues.split(",") if name.strip()]
        try:
            for name in options["queues"]:
                app.queues.get(name)
        except RegistrationError as exc:
            print(f"perdure: {exc}", file=sys.stderr)
            return 2
    print(f"perdure worker: {len(app.workflows)} workflow(s) on {app.backend.url}", flush=True)
    app.run_worker(**options)
    return 0


def _open(args: argparse.Namespace) -> Any:
    """The app to act through: the one named by ``--app`` (its database, unless
    ``--database`` says otherwise), or a bare app on ``--database`` /
    ``$PERDURE_DATABASE_URL``."""
    from .app import App

    if getattr(args, "app", None):
        app = load_app(args.app)
        if args.database:
            app.use_database(args.database)
        return app
    return App(args.database)


def _run_command(args: argparse.Namespace) -> int:
    """Operators' commands: each opens the database, acts, prints, closes."""
    import asyncio

    from .errors import PerdureError

    app = _open(args)

    async def act() -> int:
        try:
            return int(await _COMMANDS[args.command](app, args))
        finally:
            await app.close()

    try:
        return asyncio.run(act())
    except PerdureError as exc:
        print(f"perdure: {exc}", file=sys.stderr)
        return 1


async def _runs(app: Any, args: argparse.Namespace) -> int:
    shown = 0
    async for run in app.list_runs(
        workflow=args.workflow,
        status=args.status,
        parent=args.parent,
        key=args.key,
        queue=args.queue,
    ):
        if shown == args.limit:
            break
        error = f"  {run.error.type}: {run.error.message}" if run.error else ""
        if run.waiting_for:
            error += f"  (waiting: {run.waiting_for})"
        created = f"{run.created_at:%Y-%m-%d %H:%M:%S}"
        print(f"{run.id}  {run.workflow}  {run.status.value}  {created}{error}")
        shown += 1
    return 0


async def _migrate(app: Any, args: argparse.Namespace) -> int:
    await app.open()  # every backend applies its pending migrations when it opens
    print(f"{app.backend.url}: schema up to date")
    return 0


async def _workers(app: Any, args: argparse.Namespace) -> int:
    for w in await app.workers():
        version = w.version or "-"
        seen = f"{w.seen_at:%H:%M:%S}"
        print(f"{w.id}  version {version}  holds {w.held}/{w.concurrency}  seen {seen}")
        print(f"    workflows: {', '.join(w.workflows)}")
    return 0


async def _definitions(app: Any, args: argparse.Namespace) -> int:
    import json

    if args.mermaid is not None:
        wf = app.workflows.get(args.mermaid)
        if wf is None or wf.definition is None:
            graphs = sorted(d["name"] for d in app.definitions() if d["kind"] != "workflow")
            print(
                f"perdure: {args.mermaid!r} is not a DAG or a state machine of this app "
                f"(those are: {', '.join(graphs) or 'none'}); a code-first workflow's "
                "graph is the steps a run executed: see `perdure show RUN_ID`",
                file=sys.stderr,
            )
            return 2
        print(wf.definition.mermaid())
        return 0
    definitions = app.definitions()
    if args.json:
        print(json.dumps(definitions, indent=2))
        return 0
    for d in definitions:
        if d["kind"] == "dag":
            shape = f"{len(d['tasks'])} tasks"
        elif d["kind"] == "state_machine":
            shape = f"{len(d['statuses'])} statuses"
        else:
            shape = f"({', '.join(d['parameters'])})"
        print(f"{d['name']}  {d['kind']}  {shape}")
    return 0


async def _show(app: Any, args: argparse.Namespace) -> int:
    info = await app.get_run(args.run_id)
    print(f"run {info.id}: {info.workflow}, {info.status.value}")
    if info.waiting_for:
        print(f"waiting: {info.waiting_for}")
    if info.error:
        print(f"error: {info.error.type}: {info.error.message}")
    for entry in await app.backend.read_journal(args.run_id):
        payload = (entry.payload or b"").decode(errors="replace")
        if len(payload) > 120:
            payload = payload[:117] + "..."
        print(f"{entry.seq:>5} {entry.pos:>5} {entry.kind.value:<13} {entry.name}  {payload}")
    return 0


async def _action(app: Any, args: argparse.Namespace) -> int:
    if args.command == "cancel":
        done = await app.handle(args.run_id).cancel(args.reason or "cancelled by request")
    elif args.command == "retry":
        await app.retry(args.run_id, args.reason, by=args.by)
        done = True
    else:
        done = await getattr(app, args.command)(args.run_id, args.reason, by=args.by)
    status = (await app.handle(args.run_id).status()).value
    print(f"{args.run_id}: {status}" + ("" if done else f" (nothing to {args.command})"))
    return 0


async def _fork(app: Any, args: argparse.Namespace) -> int:
    handle = await app.fork(args.run_id, args.from_step, id=args.id, by=args.by)
    print(handle.id)
    return 0


async def _purge(app: Any, args: argparse.Namespace) -> int:
    print(f"deleted {await app.purge(args.older_than * 86400)} runs")
    return 0


async def _export(app: Any, args: argparse.Namespace) -> int:
    import json

    print(json.dumps(await app.export_run(args.run_id)))
    return 0


async def _replay(app: Any, args: argparse.Namespace) -> int:
    results = [app.replay_file(path) for path in args.file]
    ids = list(args.run_id)
    if args.all:
        for status in ("pending", "running", "paused", "held"):
            ids.extend([run.id async for run in app.list_runs(status=status)])
    results.extend([await app.replay(run_id) for run_id in ids])
    for result in results:
        print(result)
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} of {len(results)} runs replay with this code")
    return 1 if failed else 0


_COMMANDS: dict[str, Any] = {
    "runs": _runs,
    "workers": _workers,
    "migrate": _migrate,
    "show": _show,
    "definitions": _definitions,
    "retry": _action,
    "pause": _action,
    "resume": _action,
    "cancel": _action,
    "terminate": _action,
    "fork": _fork,
    "purge": _purge,
    "export": _export,
    "replay": _replay,
}


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(args.database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perdure", description="Durable workflows for Python.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a worker for MODULE:APP until SIGINT/SIGTERM")
    worker.add_argument("app", help="the app to serve, as module:attribute")
    worker.add_argument("--database", help="database URL (default: the app's)")
    worker.add_argument("--concurrency", type=int, default=1000, help="runs held at once")
    worker.add_argument("--lease-ttl", type=float, help="seconds a lease lasts unrenewed")
    worker.add_argument("--poll-interval", type=float, help="seconds between polls")
    worker.add_argument("--no-cache", action="store_true", help="replay on every resume")
    worker.add_argument("--worker-id", help="a name for this worker")
    worker.add_argument(
        "--queues",
        help="serve only these queues, comma-separated (default: every queue the app declares)",
    )
    worker.set_defaults(func=_worker)

    demo = sub.add_parser("demo", help="run a demo workflow on a local SQLite file")
    demo.add_argument("--database", default="sqlite:///perdure-demo.db")
    demo.set_defaults(func=_demo)

    _add_run_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"perdure: {exc}", file=sys.stderr)
        return 2


def _add_run_commands(sub: Any) -> None:
    def command(name: str, help: str, *, needs_app: bool = False) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help)
        p.add_argument("--database", help="database URL (default: $PERDURE_DATABASE_URL)")
        if needs_app:
            p.add_argument("app", help="the app whose code to use, as module:attribute")
        else:
            p.add_argument("--app", help="take the database from this module:attribute")
        p.set_defaults(func=_run_command)
        return p

    runs = command("runs", "list runs, newest first")
    runs.add_argument("--workflow")
    runs.add_argument("--status")
    runs.add_argument("--parent")
    runs.add_argument("--key", help="runs started with this key")
    runs.add_argument("--queue", help="runs on this queue")
    runs.add_argument("--limit", type=int, default=50)
    command("show", "a run and its journal").add_argument("run_id")
    definitions = command(
        "definitions", "the workflows, DAGs and state machines of an app", needs_app=True
    )
    definitions.add_argument("--json", action="store_true", help="print them as JSON")
    definitions.add_argument("--mermaid", metavar="NAME", help="draw a DAG or state machine")
    command("workers", "the workers alive on the database")
    command("migrate", "create or upgrade perdure's tables (also done on first use)")
    for name, text in (
        ("retry", "retry a failed, cancelled, terminated or dead-lettered run"),
        ("pause", "pause a run: it starts no new step"),
        ("resume", "resume a paused, cancelled or terminated run"),
        ("cancel", "cancel a run (its cleanup runs)"),
        ("terminate", "end a run now, without its cleanup"),
    ):
        p = command(name, text)
        p.add_argument("run_id")
        p.add_argument("--reason", default="")
        p.add_argument("--by", help="who acts (default: user@host)")
    fork = command("fork", "start a new run reusing a run's steps before a position")
    fork.add_argument("run_id")
    fork.add_argument("--from-step", type=int, required=True, help="the first position to redo")
    fork.add_argument("--id", help="the new run's id (default: random)")
    fork.add_argument("--by", help="who acts (default: user@host)")
    purge = command("purge", "delete runs that ended more than N days ago")
    purge.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    command("export", "print a run and its journal as JSON").add_argument("run_id")
    replay = command(
        "replay", "replay runs with the app's code; exit 1 on a divergence", needs_app=True
    )
    replay.add_argument("run_id", nargs="*", help="stored runs to replay")
    replay.add_argument("--file", action="append", default=[], help="an exported run (JSON)")
    replay.add_argument("--all", action="store_true", help="every run that has not ended")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
