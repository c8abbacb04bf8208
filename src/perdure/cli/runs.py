"""``perdure runs ...``: list, inspect and operate runs, one at a time or in bulk."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ..records import RunStatus
from .exits import CommandError, Exit, usage
from .output import STATUS_STYLE, Output, clip, duration
from .session import Session
from .transport import Json, RunQuery, Transport

PAST = {
    "retry": "retried",
    "cancel": "cancelled",
    "pause": "paused",
    "resume": "resumed",
    "terminate": "terminated",
    "delete": "deleted",
}
# Bulk actions that lose work or data: off a terminal they need --yes.
DESTRUCTIVE = frozenset({"cancel", "terminate", "delete"})
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# -- selecting runs ---------------------------------------------------------------------


def moment(option: str, text: str, now: datetime) -> str:
    """An ISO-8601 UTC timestamp from ``2026-01-31``, ``2026-01-31T08:00:00Z`` or a
    span back from now (``90s``, ``15m``, ``6h``, ``7d``)."""
    span = _SPAN.match(text)
    try:
        if span:
            ago = timedelta(seconds=float(span.group(1)) * _UNIT[span.group(2)])
            return (now - ago).isoformat().replace("+00:00", "Z")
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise usage(
            f"{option} {text!r}: write a date or time (2026-01-31, 2026-01-31T08:00:00Z) or "
            "how long ago (90s, 15m, 6h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # times without a zone are UTC, as stored
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def query_from(args: argparse.Namespace, out: Output) -> RunQuery:
    """The run filters given on the command line, checked."""
    status = args.status
    if status is not None and status not in {s.value for s in RunStatus}:
        known = ", ".join(s.value for s in RunStatus)
        raise usage(f"--status {status!r} is not a run status; use one of: {known}")
    after = moment("--created-after", args.created_after, out.now) if args.created_after else None
    before = (
        moment("--created-before", args.created_before, out.now) if args.created_before else None
    )
    return RunQuery(
        workflow=args.workflow,
        status=status,
        key=args.key,
        parent=args.parent,
        queue=args.queue,
        created_after=after,
        created_before=before,
    )


def note_of(run: Json) -> str:
    """What a run's last column says: its error, or why no worker takes it."""
    if run.get("error"):
        return clip(f"{run['error']['type']}: {run['error']['message']}")
    if run.get("waiting_for"):
        return clip(f"waiting: {run['waiting_for']}")
    return ""


def run_table(out: Output, runs: list[Json], indent: str = "") -> None:
    with_key = any(r.get("key") for r in runs)
    with_queue = any(r.get("queue") not in (None, "default") for r in runs)
    headers = ["ID", "WORKFLOW", "STATUS", "CREATED"]
    headers += ["KEY"] * with_key + ["QUEUE"] * with_queue + ["NOTE"]
    rows = []
    for run in runs:
        row: list[Any] = [run["id"], run["workflow"], (run["status"], _style(run["status"]))]
        row.append(out.ago(run.get("created_at")))
        if with_key:
            row.append(run.get("key") or "-")
        if with_queue:
            row.append(run.get("queue") or "-")
        row.append(note_of(run))
        rows.append(row)
    out.table(headers, rows, indent=indent)


def _style(status: str) -> str:
    return STATUS_STYLE.get(status, "")


# -- reading ----------------------------------------------------------------------------


def list_runs(session: Session) -> int:
    args, out = session.args, session.out
    query = query_from(args, out)
    if not 1 <= args.limit <= 500:
        raise usage(f"--limit {args.limit}: use a number from 1 to 500")
    runs, cursor = session.transport().list_runs(query, args.limit, args.cursor)
    if out.json_mode:
        out.json({"runs": runs, "next_cursor": cursor})
        return Exit.OK
    if not runs:
        out.line("no runs" + (f" match {query.describe()}" if query.params() else ""))
        return Exit.OK
    run_table(out, runs)
    if cursor is not None:
        out.note(f"(more runs: add --cursor {cursor})")
    return Exit.OK


def show(session: Session) -> int:
    args, out = session.args, session.out
    transport = session.transport()
    run = transport.run(args.run_id)
    detail: Json = {
        **run,
        "steps": transport.steps(args.run_id),
        "logs": transport.logs(args.run_id),
        "children": transport.children(args.run_id),
    }
    if args.journal:
        detail["journal"] = transport.journal(args.run_id)
    if out.json_mode:
        out.json(detail)
        return Exit.OK
    describe_run(out, detail)
    return Exit.OK


def describe_run(out: Output, run: Json) -> None:
    out.line(
        f"{out.paint('run ' + run['id'], 'bold')}  {run['workflow']}  {out.status(run['status'])}"
    )
    pairs: list[tuple[str, Any]] = [
        ("created", out.when(run.get("created_at"))),
        ("started", out.when(run.get("started_at"))),
        ("finished", out.when(run.get("finished_at"))),
        ("queue", f"{run.get('queue')}, priority {run.get('priority', 0)}"),
    ]
    for name, field in (("key", "key"), ("parent", "parent_id"), ("version", "version")):
        if run.get(field):
            pairs.append((name, str(run[field])))
    pairs.append(
        (
            "journal",
            f"{run.get('journal_len', 0)} entries, generation {run.get('generation', 0)}, "
            f"{run.get('recoveries', 0)} recoveries",
        )
    )
    if run.get("waiting_for"):
        pairs.append(("waiting", (run["waiting_for"], "yellow")))
    if run.get("input") is not None:
        pairs.append(("input", clip(json.dumps(run["input"]), 200)))
    if run.get("status") == "completed":
        pairs.append(("result", clip(json.dumps(run.get("result")), 200)))
    if run.get("error"):
        error = run["error"]
        pairs.append(("error", (f"{error['type']}: {error['message']}", "red")))
    out.fields(pairs)
    if run.get("steps"):
        out.line()
        out.heading("steps")
        rows = []
        for step in run["steps"]:
            outcome = (
                f"{step['error']['type']}: {step['error']['message']}"
                if step.get("error")
                else json.dumps(step.get("output"))
            )
            rows.append(
                [
                    str(step["position"]),
                    step["name"],
                    (step["status"], _style(step["status"])),
                    str(step.get("attempts", "")),
                    duration(step.get("duration_ms")),
                    clip(outcome),
                ]
            )
        out.table(
            ["POS", "STEP", "STATUS", "ATTEMPTS", "TOOK", "OUTPUT / ERROR"], rows, indent="  "
        )
    if run.get("logs"):
        out.line()
        out.heading("logs")
        out.table(
            ["AT", "LEVEL", "STEP", "MESSAGE"],
            [
                [
                    out.ago(line.get("at")),
                    line["level"],
                    line.get("step") or "-",
                    clip(line["message"]),
                ]
                for line in run["logs"]
            ],
            indent="  ",
        )
    if run.get("children"):
        out.line()
        out.heading("children")
        run_table(out, run["children"], indent="  ")
    if run.get("journal"):
        out.line()
        out.heading("journal")
        out.table(
            ["SEQ", "POS", "KIND", "NAME", "AT"],
            [
                [
                    str(e["seq"]),
                    str(e.get("position", "-")),
                    e["kind"],
                    e.get("name") or "-",
                    out.ago(e.get("at")),
                ]
                for e in run["journal"]
            ],
            indent="  ",
        )
    if run.get("error") and run["error"].get("traceback"):
        out.line()
        out.heading("traceback")
        for line in run["error"]["traceback"].rstrip().splitlines():
            out.line(f"  {line}")


# -- acting -----------------------------------------------------------------------------


def targets(session: Session, action: str) -> tuple[list[str], bool]:
    """The runs an action applies to, and whether they were chosen by filters: the ids
    given, or every run that matches the filters (after a confirmation, see below)."""
    args, out = session.args, session.out
    query = query_from(args, out)
    if args.run_ids and query.params():
        raise usage("name the runs by id or by filters (--status, --workflow...), not both")
    if args.run_ids:
        return list(dict.fromkeys(args.run_ids)), False
    if not query.params():
        raise usage(
            f"which runs? name them (perdure runs {action} RUN_ID ...) or choose them with "
            f"filters, e.g. perdure runs {action} --status failed --workflow NAME"
        )
    matched = [run["id"] for run in session.transport().each_run(query)]
    if matched and not args.yes:
        what = f"{action} {len(matched)} run(s) that match {query.describe()}"
        if out.can_ask():
            if not out.confirm(f"{what}?"):
                raise CommandError("nothing done", Exit.FAILED)
        elif action in DESTRUCTIVE:
            raise usage(f"this would {what}; add --yes to confirm (there is no terminal to ask)")
    return matched, True


def act(session: Session) -> int:
    """retry, cancel, pause, resume, terminate or delete: one run, several, or every
    match of the filters."""
    args, out = session.args, session.out
    action = args.action
    run_ids, bulk = targets(session, action)
    if len(run_ids) == 1 and not bulk:
        result = _apply(session.transport(), action, run_ids[0], args)
        if out.json_mode:
            out.json({k: v for k, v in result.items() if k != "id"})
        elif action == "delete":
            out.line(f"{run_ids[0]}: deleted")
        else:
            idle = "" if result["changed"] else f" (nothing to {action})"
            out.line(f"{run_ids[0]}: {out.status(result['run']['status'])}{idle}")
        return Exit.OK
    results: list[Json] = []
    refused: list[CommandError] = []
    with out.progress(len(run_ids), PAST[action]) as bar:
        for done, run_id in enumerate(run_ids, 1):
            try:
                results.append(_apply(session.transport(), action, run_id, args))
            except CommandError as failure:
                if failure.code not in (Exit.NOT_FOUND, Exit.CONFLICT):
                    raise  # the server went away, a bad option: stop here
                refused.append(failure)
                problem = {"code": failure.error_code, "message": failure.message}
                results.append({"id": run_id, "error": problem})
            bar.update(done)
    changed = sum(1 for r in results if r.get("changed") or r.get("deleted"))
    unchanged = sum(1 for r in results if r.get("changed") is False)
    if out.json_mode:
        out.json(
            {
                "results": results,
                "changed": changed,
                "unchanged": unchanged,
                "refused": len(refused),
            }
        )
    else:
        for refusal in refused:
            out.note(f"perdure: {refusal.message}")
        if not run_ids:
            out.line(f"no runs match {query_from(args, out).describe()}; nothing done")
        else:
            summary = f"{PAST[action]} {changed} of {len(run_ids)} run(s)"
            if unchanged:
                summary += f"; {unchanged} had nothing to {action}"
            if refused:
                summary += f"; {len(refused)} refused"
            out.line(summary)
    return refused[0].code if refused else Exit.OK


def _apply(transport: Transport, action: str, run_id: str, args: argparse.Namespace) -> Json:
    """One action on one run: ``{"id", "changed", "run"}``, or ``{"id", "deleted"}``."""
    if action == "delete":
        transport.delete(run_id)
        return {"id": run_id, "deleted": True}
    changed, run = transport.act(run_id, action, args.reason, args.by)
    return {"id": run_id, "changed": changed, "run": run}


def fork(session: Session) -> int:
    args, out = session.args, session.out
    if args.from_step < 0:
        raise usage("--from-step is a position >= 0 (see `perdure runs show RUN_ID`)")
    run = session.transport().fork(args.run_id, args.from_step, args.id, args.by)
    if out.json_mode:
        out.json(run)
    else:
        out.line(run["id"])
    return Exit.OK


def purge(session: Session) -> int:
    args, out = session.args, session.out
    if args.older_than < 0:
        raise usage("--older-than is a number of days >= 0")
    transport = session.transport()
    what = (
        f"delete every run that ended more than {args.older_than:g} day(s) ago, from "
        f"{transport.where}"
    )
    if not args.yes:
        if out.can_ask():
            if not out.confirm(f"{what}?"):
                raise CommandError("nothing done", Exit.FAILED)
        else:
            raise usage(f"this would {what}; add --yes to confirm (there is no terminal to ask)")
    with out.progress(None, "deleted") as bar:
        deleted = transport.purge(args.older_than * 86400, bar.update)
    if out.json_mode:
        out.json({"deleted": deleted})
    else:
        out.line(f"deleted {deleted} runs")
    return Exit.OK


def export(session: Session) -> int:
    session.out.json(session.direct("runs export").export(session.args.run_id))
    return Exit.OK


def replay(session: Session) -> int:
    args, out = session.args, session.out
    if not (args.run_ids or args.file or args.all):
        raise usage("which runs? give RUN_ID ..., --file EXPORTED.json or --all")
    transport = session.direct("runs replay", args.app_spec)
    results = transport.replay(args.run_ids, args.file, args.all)
    failed = sum(not r.ok for r in results)
    if out.json_mode:
        out.json(
            {
                "results": [
                    {
                        "id": r.run_id,
                        "workflow": r.workflow,
                        "entries": r.entries,
                        "ok": r.ok,
                        "error": str(r.error) if r.error else None,
                    }
                    for r in results
                ],
                "diverged": failed,
            }
        )
    else:
        for result in results:
            text = str(result)
            out.line(out.paint(text, "red") if not result.ok else text)
        out.line(f"{len(results) - failed} of {len(results)} runs replay with this code")
    return Exit.FAILED if failed else Exit.OK
