"""``perdure schedules ...``: list, show, create, pause, resume, delete, trigger and
backfill cron schedules, on the database directly or through a server.

Both ways answer in the shapes of the HTTP contract (the schedule object of
``GET /api/v1/schedules/{id}``), so the output is the same either way.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from ..schedules import InvalidSchedule, parse_time
from .commands import code_and_name, json_arg
from .exits import Exit, usage
from .output import Output, clip
from .parser import Parser, connection_options, examples, printing_options
from .session import Session
from .transport import Json

VERBS = ("list", "show", "create", "pause", "resume", "delete", "trigger", "backfill")


# -- the commands ---------------------------------------------------------------------------


def command(session: Session) -> int:
    """``perdure schedules VERB``."""
    args, out = session.args, session.out
    verb: str = args.schedules_command
    body: Json = {}
    spec: str | None = None
    schedule_id: str | None = getattr(args, "schedule_id", None)
    if verb == "create":
        spec, workflow = code_and_name(session, args.target, "workflow")
        body = {
            "workflow": workflow,
            "cron": args.cron,
            "args": json_arg("--args", args.args, list, []),
            "kwargs": json_arg("--kwargs", args.kwargs, dict, {}),
            "tz": args.tz,
            "overlap": args.overlap,
            "catch_up": args.catch_up,
        }
        if args.id is not None:
            body["id"] = args.id
    elif verb == "trigger" and args.at:
        body = {"at": _moment("--at", args.at)}
    elif verb == "backfill":
        body = {"start": _moment("--start", args.start), "end": _moment("--end", args.end)}
    transport = session.transport(spec)
    answer = transport.schedules(verb, schedule_id, body)
    if out.json_mode:
        out.json(answer)
        return Exit.OK
    _print(out, verb, schedule_id, answer)
    return Exit.OK


def _moment(option: str, text: str) -> str:
    try:
        return parse_time(text).astimezone(UTC).isoformat().replace("+00:00", "Z")
    except InvalidSchedule:
        raise usage(
            f"{option} {text!r}: write an ISO-8601 time, e.g. 2026-01-31T09:00:00Z"
        ) from None


def _print(out: Output, verb: str, schedule_id: str | None, answer: Any) -> None:
    if verb == "list":
        found = answer["schedules"]
        if not found:
            out.line("no schedules")
            return
        rows = [
            [
                s["id"],
                s["workflow"],
                s["cron"],
                s["tz"],
                out.status("paused" if s["paused"] else s["status"]),
                out.ago(s["next_at"]) if not s["paused"] else "-",
                s["last_run"] or "-",
            ]
            for s in found
        ]
        out.table(["ID", "WORKFLOW", "CRON", "TZ", "STATUS", "NEXT", "LAST RUN"], rows)
    elif verb in ("show", "create"):
        _show(out, answer)
    elif verb in ("pause", "resume"):
        done = "paused" if verb == "pause" else "resumed"
        if answer["changed"]:
            out.line(f"{schedule_id}: {done}")
        else:
            out.line(f"{schedule_id}: already {done if verb == 'pause' else 'running'}")
    elif verb == "delete":
        out.line(f"{schedule_id}: deleted (the runs it started are kept)")
    elif verb == "trigger":
        out.line(answer["id"])
    else:
        for run_id in answer["runs"]:
            out.line(run_id)


def _show(out: Output, s: Json) -> None:
    out.heading(f"schedule {s['id']}")
    out.fields(
        [
            ("workflow", s["workflow"]),
            ("cron", f"{s['cron']} ({s['tz']})"),
            ("arguments", clip(json.dumps({"args": s["args"], "kwargs": s["kwargs"]}))),
            ("overlap", s["overlap"]),
            ("catch up", str(s["catch_up"])),
            ("status", out.status("paused" if s["paused"] else s["status"])),
            ("next slot", out.when(s["next_at"])),
            ("last slot", out.when(s["last_slot"])),
            ("last run", s["last_run"] or "-"),
            ("skipped", str(s["skipped"])),
            *([("last error", (s["last_error"], "red"))] if s.get("last_error") else []),
        ]
    )


# -- the parser -----------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """``perdure schedules`` and its verbs."""
    schedules = sub.add_parser(
        "schedules",
        help="list, create and operate cron schedules",
        description=(
            "Cron schedules: each runs a workflow at every slot of its cron, once per slot "
            "however many workers run. `perdure schedules COMMAND --help` for each."
        ),
        epilog=examples(
            "perdure schedules list",
            "perdure schedules create shop:app report --cron '0 9 * * mon-fri' --tz Europe/Paris",
            "perdure schedules backfill report --start 2026-01-01 --end 2026-01-31 --app shop:app",
        ),
    )
    verbs = schedules.add_subparsers(
        dest="schedules_command", metavar="COMMAND", parser_class=Parser
    )
    verbs.required = True
    common = [connection_options(), printing_options()]
    listing = verbs.add_parser(
        "list",
        parents=common,
        help="the schedules, by id",
        description="List the schedules: workflow, cron, status, next slot and last run.",
        epilog=examples("perdure schedules list", "perdure schedules list --json"),
    )
    listing.set_defaults(handler="schedules")
    show = verbs.add_parser(
        "show",
        parents=common,
        help="a schedule: its spec, status, next and last slot",
        description="Show a schedule: its spec, status, next and last slot, last run.",
        epilog=examples("perdure schedules show report"),
    )
    show.add_argument("schedule_id", metavar="ID")
    show.set_defaults(handler="schedules")

    create = verbs.add_parser(
        "create",
        parents=common,
        help="create a schedule",
        description=(
            "Create a schedule of WORKFLOW. On the database directly the app's code is "
            "needed (MODULE:APP WORKFLOW, to check the arguments); through a server, only "
            "the workflow's name. Nothing is stored if the spec is wrong (exit 2)."
        ),
        epilog=examples(
            "perdure schedules create shop:app report --cron '@daily' --args '[\"eu\"]'",
            "perdure schedules create report --cron '@every 10m' --server http://127.0.0.1:8080",
        ),
    )
    create.add_argument(
        "target", metavar="[MODULE:APP] WORKFLOW", nargs="+", help="the app (direct) and workflow"
    )
    create.add_argument(
        "--cron",
        required=True,
        help="5-field cron ('*/15 * * * *', '0 9 * * mon-fri'), @hourly/@daily/..., "
        "or '@every 10m' (s, m, h, d)",
    )
    create.add_argument("--id", help="the schedule's id (default: the workflow's name)")
    create.add_argument("--args", metavar="JSON", help="positional arguments, a JSON array")
    create.add_argument("--kwargs", metavar="JSON", help="keyword arguments, a JSON object")
    create.add_argument("--tz", default="UTC", help="IANA time zone of the cron (UTC)")
    create.add_argument(
        "--overlap",
        choices=["allow", "skip"],
        default="allow",
        help="skip a slot while the previous slot's run is still going (default: allow)",
    )
    create.add_argument(
        "--catch-up",
        type=int,
        default=0,
        metavar="N",
        help="after downtime, run the latest missed slot and N before it (0)",
    )
    create.set_defaults(handler="schedules")

    helps = {
        "pause": "Stop firing slots until resumed.",
        "resume": "Fire slots again; slots missed while paused follow --catch-up.",
        "delete": "Delete a schedule; the runs it started are kept.",
    }
    for verb, text in helps.items():
        p = verbs.add_parser(
            verb,
            parents=common,
            help=text.rstrip(".").lower(),
            description=text,
            epilog=examples(f"perdure schedules {verb} report"),
        )
        p.add_argument("schedule_id", metavar="ID")
        p.set_defaults(handler="schedules")

    trigger = verbs.add_parser(
        "trigger",
        parents=common,
        help="run the schedule's workflow now (or for the slot time --at); prints the run id",
        description=(
            "Start the schedule's workflow now, or for the slot time --at. The run's id is "
            "ID@TIME like a slot's: triggering the same time twice starts one run. On the "
            "database directly the app's code is needed (--app MODULE:APP)."
        ),
        epilog=examples(
            "perdure schedules trigger report --app shop:app",
            "perdure schedules trigger report --at 2026-01-31T09:00:00Z --server URL",
        ),
    )
    trigger.add_argument("schedule_id", metavar="ID")
    trigger.add_argument("--at", metavar="TIME", help="the slot time, ISO-8601 (default: now)")
    trigger.set_defaults(handler="schedules")

    backfill = verbs.add_parser(
        "backfill",
        parents=common,
        help="run every slot between two times that has not run; prints the run ids",
        description=(
            "Start the run of every slot in [--start, --end] (at most 1000) that has none; "
            "a slot that ran already is not run again, so backfilling twice is harmless. "
            "On the database directly the app's code is needed (--app MODULE:APP)."
        ),
        epilog=examples(
            "perdure schedules backfill report --start 2026-01-01 --end 2026-01-31T23:59:59Z"
        ),
    )
    backfill.add_argument("schedule_id", metavar="ID")
    backfill.add_argument(
        "--start", required=True, metavar="TIME", help="ISO-8601 (UTC if no zone)"
    )
    backfill.add_argument("--end", required=True, metavar="TIME", help="ISO-8601, included")
    backfill.set_defaults(handler="schedules")
