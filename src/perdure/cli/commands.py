"""The commands besides ``runs``: start and send, definitions and graphs, workers and
queues, migrate."""

from __future__ import annotations

import json
from typing import Any

from .exits import CommandError, Exit, usage
from .output import clip
from .session import Session
from .transport import StartRequest

_ENDED_BADLY = {"failed", "cancelled", "terminated", "dead_letter"}


def code_and_name(session: Session, given: list[str], what: str) -> tuple[str | None, str]:
    """``[MODULE:APP] NAME``: the app's code is needed on the database directly, and not
    through a server (which has it)."""
    remote = session.server() is not None
    if remote:
        if len(given) != 1:
            raise usage(f"with --server, name only the {what} (the server has the app's code)")
        return None, given[0]
    if len(given) == 1 and getattr(session.args, "app", None):
        return session.args.app, given[0]
    if len(given) != 2:
        raise usage(
            f"name the app and the {what}: MODULE:APP NAME (its code is needed), or use "
            "--server URL"
        )
    return given[0], given[1]


def json_arg(option: str, text: str | None, kind: type, default: Any) -> Any:
    if text is None:
        return default
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise usage(
            f"{option} is not JSON ({exc}); e.g. --args '[1, \"two\"]' --kwargs '{{\"n\": 3}}'"
        ) from None
    if not isinstance(value, kind):
        raise usage(f"{option} must be a JSON {'array' if kind is list else 'object'}")
    return value


def start(session: Session) -> int:
    args, out = session.args, session.out
    spec, workflow = code_and_name(session, args.target, "workflow")
    request = StartRequest(
        workflow=workflow,
        args=json_arg("--args", args.args, list, []),
        kwargs=json_arg("--kwargs", args.kwargs, dict, {}),
        id=args.id,
        id_policy=args.id_policy,
        key=args.key,
        queue=args.queue,
        priority=args.priority,
        delay=args.delay,
        timeout=args.timeout,
        dedup_key=args.dedup_key,
    )
    transport = session.transport(spec)
    run = transport.start(request)
    if args.wait:
        if not out.json_mode:
            out.note(f"{run['id']}: {run['status']}; waiting for it to end (Ctrl-C stops waiting)")
        run = transport.wait(run["id"])
        if out.json_mode:
            out.json(run)
        elif run["status"] == "completed":
            out.line(json.dumps(run.get("result"), ensure_ascii=False))
        if run["status"] in _ENDED_BADLY:
            error = run.get("error") or {}
            detail = f": {error.get('type')}: {error.get('message')}" if error else ""
            raise CommandError(f"run {run['id']!r} {run['status']}{detail}", Exit.FAILED)
        return Exit.OK
    if out.json_mode:
        out.json(run)
    else:
        out.line(run["id"])
    return Exit.OK


def send(session: Session) -> int:
    args, out = session.args, session.out
    message = None
    if args.message is not None:
        try:
            message = json.loads(args.message)
        except ValueError:
            raise usage(
                f"the message {args.message!r} is not JSON; quote text as JSON, e.g. "
                "'\"approved\"', or send true, 42, '{\"ok\": true}'"
            ) from None
    accepted = session.transport().send(args.run_id, args.topic, message, args.key)
    if out.json_mode:
        out.json({"accepted": accepted})
    elif accepted:
        out.line(f"{args.run_id}: message sent on {args.topic!r}")
    else:
        out.line(f"{args.run_id}: a message with key {args.key!r} was already delivered; not sent")
    return Exit.OK


def definitions(session: Session) -> int:
    args, out = session.args, session.out
    spec = args.app_spec or getattr(args, "app", None)
    if session.server() is not None:
        if args.app_spec:
            raise usage("with --server, the server lists its app's definitions: drop MODULE:APP")
    elif not spec:
        raise usage(
            "definitions are in your code: perdure definitions MODULE:APP (or --server URL)"
        )
    found = session.transport(spec).definitions()
    if out.json_mode:
        out.json({"definitions": found})
        return Exit.OK
    rows = []
    for d in found:
        if d["kind"] == "dag":
            shape = f"{len(d['tasks'])} tasks"
        elif d["kind"] == "state_machine":
            shape = f"{len(d['statuses'])} statuses"
        else:
            shape = f"({', '.join(d.get('parameters', []))})"
        rows.append([d["name"], d["kind"], d.get("queue") or "-", shape])
    out.table(["NAME", "KIND", "QUEUE", "SHAPE"], rows)
    return Exit.OK


def graph(session: Session) -> int:
    args, out = session.args, session.out
    spec, name = code_and_name(session, args.target, "DAG or state machine")
    transport = session.transport(spec)
    found = transport.definition(name)
    if "mermaid" not in found:
        graphs = sorted(d["name"] for d in transport.definitions() if d["kind"] != "workflow")
        raise usage(
            f"{name!r} is a code-first workflow, not a DAG or a state machine (those are: "
            f"{', '.join(graphs) or 'none'}); its graph is the steps a run executed: see "
            "`perdure runs show RUN_ID`"
        )
    if out.json_mode:
        out.json({"name": found["name"], "kind": found["kind"], "mermaid": found["mermaid"]})
    else:
        out.out.write(
            found["mermaid"] if found["mermaid"].endswith("\n") else found["mermaid"] + "\n"
        )
    return Exit.OK


def workers(session: Session) -> int:
    out = session.out
    found = session.transport().workers()
    if out.json_mode:
        out.json({"workers": found})
        return Exit.OK
    if not found:
        out.line("no live workers")
        return Exit.OK
    rows = []
    for w in found:
        rows.append(
            [
                w["id"],
                w.get("version") or "-",
                f"{w.get('held', 0)}/{w.get('concurrency', 0)}",
                out.ago(w.get("started_at")),
                out.ago(w.get("seen_at")),
                ", ".join(w.get("queues") or []) or "all",
                clip(", ".join(w.get("workflows") or []), 60),
            ]
        )
    out.table(["ID", "VERSION", "HOLDS", "STARTED", "SEEN", "QUEUES", "WORKFLOWS"], rows)
    return Exit.OK


def queues(session: Session) -> int:
    out = session.out
    found = session.transport().queues()
    if out.json_mode:
        out.json({"queues": found})
        return Exit.OK
    rows = []
    for q in found:
        limits = [
            f"{name.replace('_', '-')} {q[name]}"
            for name in ("concurrency", "per_worker", "per_key")
            if q.get(name) is not None
        ]
        if q.get("rate"):
            limits.append(f"rate {q['rate']['limit']}/{q['rate']['per']:g}s")
        counts = q.get("counts") or {}
        rows.append(
            [
                q["name"],
                ", ".join(limits) or "none",
                ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n) or "no runs",
            ]
        )
    out.table(["QUEUE", "LIMITS", "RUNS"], rows)
    return Exit.OK


def migrate(session: Session) -> int:
    transport = session.direct("migrate")
    transport.migrate()
    if session.out.json_mode:
        session.out.json({"database": transport.where, "migrated": True})
    else:
        session.out.line(f"{transport.where}: schema up to date")
    return Exit.OK
