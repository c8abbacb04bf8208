"""The command line: every command, its options, and help that teaches (what each
command does, and an example in its epilog)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any, NoReturn

from .exits import CommandError, Exit

STATUSES = "pending, running, completed, failed, cancelled, held, paused, terminated, dead_letter"


class Formatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal; keeps examples as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.split("\n\n"):
            if block.startswith("examples:"):
                blocks.append(block)
            else:
                words = " ".join(block.split())
                blocks.append(
                    textwrap.fill(words, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(blocks)


class Parser(argparse.ArgumentParser):
    """Usage errors end as ``perdure: <message>`` with exit status 2, like every other."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", Exit.USAGE)


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


# -- option groups shared by several commands ---------------------------------------------


def connection_options() -> Parser:
    p = Parser(add_help=False)
    g = p.add_argument_group("where the runs are (first match wins)")
    g.add_argument(
        "--server",
        metavar="URL",
        help="go through a `perdure serve` server (default: $PERDURE_SERVER)",
    )
    g.add_argument(
        "--token",
        metavar="TOKEN",
        help="the server's API token (default: $PERDURE_TOKEN)",
    )
    g.add_argument(
        "--database",
        metavar="URL",
        help="the database, directly (default: $PERDURE_DATABASE_URL, else ./perdure.db)",
    )
    g.add_argument(
        "--app",
        metavar="MODULE:APP",
        help="the database of this app (unless --database says otherwise), and its code",
    )
    return p


def printing_options(json_option: bool = True) -> Parser:
    p = Parser(add_help=False)
    g = p.add_argument_group("output")
    if json_option:
        g.add_argument(
            "--json", action="store_true", help="print JSON (the HTTP API's shapes) for scripts"
        )
    g.add_argument(
        "--no-color", action="store_true", help="no colours (also: $NO_COLOR, or not a terminal)"
    )
    return p


def _filters() -> Parser:
    p = Parser(add_help=False)
    g = p.add_argument_group("filters (every one given must match)")
    g.add_argument("--workflow", metavar="NAME", help="runs of this workflow")
    g.add_argument("--status", metavar="STATUS", help=f"runs in this status: {STATUSES}")
    g.add_argument("--key", metavar="KEY", help="runs started with this business key")
    g.add_argument("--parent", metavar="RUN_ID", help="children of this run")
    g.add_argument("--queue", metavar="QUEUE", help="runs on this queue")
    g.add_argument(
        "--created-after",
        metavar="WHEN",
        help="created after a time (2026-01-31, 2026-01-31T08:00:00Z) or a span ago (15m, 6h, 7d)",
    )
    g.add_argument("--created-before", metavar="WHEN", help="created before WHEN (same forms)")
    return p


# -- the parser -----------------------------------------------------------------------------


def build() -> Parser:
    """The ``perdure`` parser; each command sets ``handler`` (and ``action`` for the
    actions on runs)."""
    parser = Parser(
        prog="perdure",
        description=(
            "Durable workflows for Python: run workers and the server, and see, start and "
            "operate runs, on the database directly or through a server."
        ),
        epilog=(
            examples(
                "perdure worker shop:app                    run workflows",
                "perdure runs list --status failed          what failed",
                "perdure runs show RUN_ID                   a run, its steps and error",
                "perdure runs retry RUN_ID                  retry it from the failed step",
                "perdure serve shop:app --no-auth           the HTTP API and web UI",
            )
            + "\n\nexit status: 0 done; 1 the outcome is a failure; 2 usage or configuration"
            " error; 3 not found; 4 conflict (the run's status does not allow it, id taken);"
            " 5 the server could not be reached or refused the token."
            "\n\nEach command's --help says more (perdure runs retry --help)."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="store_true", help="print perdure's version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _processes(sub)
    _runs(sub)
    _other(sub)
    from .schedules import add_parser as schedules  # it builds on this module's helpers

    schedules(sub)
    return parser


def _processes(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="run workflows: a worker for MODULE:APP until SIGINT/SIGTERM",
        description=(
            "Import MODULE (from the current directory or PYTHONPATH), take its perdure.App "
            "named APP (default: app) and run a worker until SIGINT or SIGTERM; the steps in "
            "flight then finish and are recorded. Run as many as you like, on as many "
            "machines, against one database."
        ),
        epilog=examples(
            "perdure worker shop:app",
            "perdure worker shop:app --database postgresql://db/shop --concurrency 200",
            "perdure worker shop:app --queues gpu",
        ),
    )
    worker.add_argument("app_spec", metavar="MODULE:APP", help="the app to run, e.g. shop:app")
    worker.add_argument("--database", metavar="URL", help="database URL (default: the app's)")
    worker.add_argument("--concurrency", type=int, default=1000, help="runs held at once")
    worker.add_argument("--lease-ttl", type=float, help="seconds a lease lasts unrenewed")
    worker.add_argument("--poll-interval", type=float, help="seconds between polls")
    worker.add_argument("--no-cache", action="store_true", help="replay on every resume")
    worker.add_argument("--worker-id", help="a name for this worker")
    worker.add_argument(
        "--queues",
        help="serve only these queues, comma-separated (default: every queue the app declares)",
    )
    worker.set_defaults(handler="worker")

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API and web UI for MODULE:APP (with a worker)",
        description=(
            "Serve the HTTP API (/api/v1) and the web UI (/) for MODULE:APP, with a worker "
            "in the same process unless --no-worker, until SIGINT or SIGTERM. Needs the "
            "server extra: pip install 'perdure[server]'. Tokens come from "
            '$PERDURE_API_TOKENS ("admin:TOKEN,read:TOKEN2") and/or --tokens-file (one '
            "`SCOPE TOKEN` a line); --no-auth is for local use only (loopback hosts)."
        ),
        epilog=examples(
            "perdure serve shop:app --no-auth                     local: http://127.0.0.1:8080/",
            "PERDURE_API_TOKENS=admin:s3cret perdure serve shop:app --host 0.0.0.0",
            "perdure serve shop:app --tokens-file /etc/perdure/tokens --no-worker",
        ),
    )
    serve.add_argument("app_spec", metavar="MODULE:APP", help="the app to serve, e.g. shop:app")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="the port to listen on")
    serve.add_argument("--database", metavar="URL", help="database URL (default: the app's)")
    serve.add_argument(
        "--tokens-file", metavar="FILE", help="API tokens, one `SCOPE TOKEN` a line (read, admin)"
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="no tokens needed (only on a loopback host)"
    )
    serve.add_argument("--no-worker", action="store_true", help="serve only; workers run elsewhere")
    serve.set_defaults(handler="serve")

    demo = sub.add_parser(
        "demo",
        help="run a demo workflow on a local SQLite file",
        description=(
            "Run a demo order workflow (a retried charge, a durable sleep, three steps at "
            "once, a sync step) and print what happens."
        ),
        epilog=examples("perdure demo", "perdure demo --database sqlite:///demo.db"),
    )
    demo.add_argument("--database", metavar="URL", default="sqlite:///perdure-demo.db")
    demo.set_defaults(handler="demo")

    migrate = sub.add_parser(
        "migrate",
        parents=[connection_options(), printing_options()],
        help="create or upgrade perdure's tables (also done on first use)",
        description=(
            "Create or upgrade perdure's tables in the database, e.g. as a deploy step "
            "(an app also does it when it first opens the database). Works on the database "
            "directly, not through a server."
        ),
        epilog=examples("perdure migrate --database postgresql://db/shop"),
    )
    migrate.set_defaults(handler="migrate")


def _runs(sub: Any) -> None:
    runs = sub.add_parser(
        "runs",
        help="list, inspect and operate runs",
        description="List, inspect and operate runs: `perdure runs COMMAND --help` for each.",
        epilog=examples(
            "perdure runs list --status failed --workflow checkout",
            "perdure runs show order-17",
            "perdure runs retry order-17",
            "perdure runs retry --status failed --workflow checkout   every match",
        ),
    )
    verbs = runs.add_subparsers(dest="runs_command", metavar="COMMAND", parser_class=Parser)
    verbs.required = True
    common = [connection_options(), printing_options()]

    listing = verbs.add_parser(
        "list",
        parents=[*common, _filters()],
        help="list runs, newest first",
        description=(
            "List runs, newest first, in pages (--limit, then --cursor to go on). The last "
            "column says why a run failed, or why no worker takes it."
        ),
        epilog=examples(
            "perdure runs list --status failed",
            "perdure runs list --workflow checkout --created-after 1h",
            "perdure runs list --key customer-42 --json | jq -r '.runs[].id'",
        ),
    )
    listing.add_argument("--limit", type=int, default=50, help="runs per page, 1-500 (50)")
    listing.add_argument("--cursor", help="go on from where the previous page ended")
    listing.set_defaults(handler="runs list")

    show = verbs.add_parser(
        "show",
        parents=common,
        help="a run: status, input, result or error, steps, logs, children",
        description=(
            "Show a run: its status and times, input, result or error (with the traceback), "
            "its steps with their attempts and durations, the lines it logged, its children."
        ),
        epilog=examples("perdure runs show order-17", "perdure runs show order-17 --journal"),
    )
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--journal", action="store_true", help="the raw journal entries too")
    show.set_defaults(handler="runs show")

    helps = {
        "retry": (
            "retry failed, cancelled, terminated, dead-lettered or held runs",
            "Retry runs from the step that ended them: recorded steps do not run again, the "
            "failed step gets a fresh set of attempts. A worker then runs them.",
        ),
        "cancel": (
            "cancel runs (their cleanup code runs)",
            "Ask runs to cancel: the step in flight finishes, nothing new starts, and the "
            "workflow may catch the cancellation to clean up. Children are cancelled too.",
        ),
        "pause": (
            "pause runs: they start no new step until resumed",
            "Pause pending or running runs: steps in flight finish and are recorded; nothing "
            "new starts until `perdure runs resume`.",
        ),
        "resume": (
            "resume paused runs (or bring back cancelled or terminated ones)",
            "Resume paused runs; a cancelled or terminated run goes on from where it stopped.",
        ),
        "terminate": (
            "end runs now, without their cleanup",
            "End runs at once: no cleanup code runs, in-flight steps' results are discarded, "
            "unfinished children are terminated too.",
        ),
        "delete": (
            "delete ended runs and their journals",
            "Delete runs that have ended, with their journals. A run that has not ended is "
            "refused (cancel or terminate it first).",
        ),
    }
    for action, (short, long) in helps.items():
        p = verbs.add_parser(
            action,
            parents=[*common, _filters()],
            help=short,
            description=(
                f"{long}\n\nName runs by id, or choose every run that matches the filters. "
                "With filters, on a terminal you are asked to confirm (unless --yes); off a "
                "terminal, cancel, terminate and delete need --yes. Runs whose status does "
                "not allow it are reported and skipped (exit status 4)."
            ),
            epilog=examples(
                f"perdure runs {action} order-17",
                f"perdure runs {action} order-17 order-18",
                f"perdure runs {action} --status "
                f"{'running' if action in ('cancel', 'pause', 'terminate') else 'failed'}"
                " --workflow checkout --yes",
            ),
        )
        p.add_argument("run_ids", metavar="RUN_ID", nargs="*", help="the runs (or use filters)")
        p.add_argument("--yes", action="store_true", help="do not ask to confirm a bulk action")
        if action != "delete":
            p.add_argument(
                "--reason", metavar="TEXT", default="", help="why, kept in the run's journal"
            )
            p.add_argument(
                "--by",
                metavar="WHO",
                help="who acts, kept in the journal (default: user@host; not with --server)",
            )
        p.set_defaults(handler="runs act", action=action, reason="", by=None)

    fork = verbs.add_parser(
        "fork",
        parents=common,
        help="start a new run reusing a run's steps before a position",
        description=(
            "Start a new run of the same workflow and input that reuses what RUN_ID recorded "
            "at positions before --from-step (see `perdure runs show`) and runs the rest "
            "again. The original is untouched. Prints the new run's id."
        ),
        epilog=examples("perdure runs fork order-17 --from-step 2 --id order-17-again"),
    )
    fork.add_argument("run_id", metavar="RUN_ID")
    fork.add_argument(
        "--from-step", type=int, required=True, metavar="N", help="the first position to redo"
    )
    fork.add_argument("--id", help="the new run's id (default: random)")
    fork.add_argument(
        "--by", metavar="WHO", help="who acts (default: user@host; not with --server)"
    )
    fork.set_defaults(handler="runs fork")

    purge = verbs.add_parser(
        "purge",
        parents=common,
        help="delete runs that ended more than N days ago",
        description=(
            "Delete every run that ended more than DAYS days ago, with its journal; runs "
            "that have not ended are never touched. Asks to confirm on a terminal; needs "
            "--yes otherwise (e.g. from cron)."
        ),
        epilog=examples(
            "perdure runs purge --older-than 30", "perdure runs purge --older-than 7 --yes"
        ),
    )
    purge.add_argument(
        "--older-than", type=float, required=True, metavar="DAYS", help="days since they ended"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask to confirm")
    purge.set_defaults(handler="runs purge")

    export = verbs.add_parser(
        "export",
        parents=[connection_options()],
        help="print a run and its journal as JSON (for `runs replay --file`)",
        description=(
            "Print a run and its journal as JSON, to replay it elsewhere with "
            "`perdure runs replay MODULE:APP --file FILE`. On the database directly."
        ),
        epilog=examples("perdure runs export order-17 > order-17.json"),
    )
    export.add_argument("run_id", metavar="RUN_ID")
    export.set_defaults(handler="runs export")

    replay = verbs.add_parser(
        "replay",
        parents=[connection_options(), printing_options()],
        help="check the app's code against stored runs; exit 1 on a divergence",
        description=(
            "Replay runs' journals with the code of MODULE:APP, executing nothing: a run "
            "whose journal the code no longer matches is reported, and the exit status is 1. "
            "Use it before a deploy. On the database directly."
        ),
        epilog=examples(
            "perdure runs replay shop:app --all",
            "perdure runs replay shop:app order-17 --file order-18.json",
        ),
    )
    replay.add_argument("app_spec", metavar="MODULE:APP", help="the app whose code to check")
    replay.add_argument("run_ids", metavar="RUN_ID", nargs="*", help="stored runs to replay")
    replay.add_argument(
        "--file", action="append", default=[], help="an exported run (JSON); repeatable"
    )
    replay.add_argument("--all", action="store_true", help="every run that has not ended")
    replay.set_defaults(handler="runs replay")


def _other(sub: Any) -> None:
    common = [connection_options(), printing_options()]
    start = sub.add_parser(
        "start",
        parents=common,
        help="start a run of a workflow",
        description=(
            "Start a run of WORKFLOW and print its id; a worker runs it. On the database "
            "directly the app's code is needed (MODULE:APP WORKFLOW, to check the "
            "arguments); through a server, only the workflow's name. An id that is taken "
            "returns the existing run, unless --id-policy says otherwise."
        ),
        epilog=examples(
            "perdure start shop:app checkout --args '[\"order-17\"]' --id order-17",
            'perdure start shop:app report --kwargs \'{"day": "2026-01-31"}\' --wait',
            "perdure start checkout --args '[\"order-18\"]' --server http://127.0.0.1:8080",
        ),
    )
    start.add_argument(
        "target", metavar="[MODULE:APP] WORKFLOW", nargs="+", help="the app (direct) and workflow"
    )
    start.add_argument("--args", metavar="JSON", help="positional arguments, a JSON array")
    start.add_argument("--kwargs", metavar="JSON", help="keyword arguments, a JSON object")
    start.add_argument("--id", help="the run's id (default: random); starting twice is idempotent")
    start.add_argument(
        "--id-policy",
        choices=["use_existing", "reject", "replace_ended", "replace_failed"],
        help="when the id is taken: return that run (default), refuse, or replace it if ended",
    )
    start.add_argument("--key", help="a business key, to find its runs by")
    start.add_argument("--queue", help="the queue (default: the workflow's)")
    start.add_argument("--priority", type=int, help="higher is admitted first on a limited queue")
    start.add_argument("--delay", type=float, metavar="SECONDS", help="start this much later")
    start.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="cancel the run this long after it starts"
    )
    start.add_argument(
        "--dedup-key", help="refused while an unfinished run of the queue has this key"
    )
    start.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run to end; print its result (exit 1 if it failed)",
    )
    start.set_defaults(handler="start")

    send = sub.add_parser(
        "send",
        parents=common,
        help="send a message to a run (perdure.receive)",
        description=(
            "Send MESSAGE (JSON; default null) to a run on TOPIC; the run gets it from "
            "`await perdure.receive(TOPIC)`. With --key, sending again is ignored."
        ),
        epilog=examples(
            "perdure send order-17 approval true",
            'perdure send order-17 approval \'{"by": "ann"}\' --key approval-1',
        ),
    )
    send.add_argument("run_id", metavar="RUN_ID")
    send.add_argument("topic", metavar="TOPIC")
    send.add_argument("message", metavar="MESSAGE", nargs="?", help="JSON (default: null)")
    send.add_argument("--key", help="an idempotency key: a second send with it is ignored")
    send.set_defaults(handler="send")

    definitions = sub.add_parser(
        "definitions",
        parents=common,
        help="the workflows, DAGs and state machines of an app",
        description=(
            "List what the app can run: code-first workflows (with their parameters), "
            "DAGs and state machines. Give MODULE:APP on the database directly; through a "
            "server, nothing."
        ),
        epilog=examples("perdure definitions shop:app", "perdure definitions --server URL --json"),
    )
    definitions.add_argument(
        "app_spec", metavar="MODULE:APP", nargs="?", help="the app (not with --server)"
    )
    definitions.set_defaults(handler="definitions")

    graph = sub.add_parser(
        "graph",
        parents=common,
        help="the Mermaid diagram of a DAG or state machine",
        description=(
            "Print the Mermaid diagram of a DAG (a flowchart) or a state machine (a state "
            "diagram); paste it into Markdown that renders Mermaid."
        ),
        epilog=examples(
            "perdure graph shop:app order-processing > order-processing.mmd",
            "perdure graph signup --server http://127.0.0.1:8080",
        ),
    )
    graph.add_argument(
        "target", metavar="[MODULE:APP] NAME", nargs="+", help="the app (direct) and the name"
    )
    graph.set_defaults(handler="graph")

    workers = sub.add_parser(
        "workers",
        parents=common,
        help="the workers alive on the database",
        description=(
            "The live workers: what they serve, how many runs they hold, when they started "
            "and last checked in."
        ),
        epilog=examples("perdure workers", "perdure workers --json"),
    )
    workers.set_defaults(handler="workers")

    queues = sub.add_parser(
        "queues",
        parents=common,
        help="the queues, their limits and their runs by status",
        description=(
            "The queues, their limits, and how many of their runs are in each status. On "
            "the database directly, give --app MODULE:APP to see the queues it declares."
        ),
        epilog=examples("perdure queues --app shop:app", "perdure queues --server URL --json"),
    )
    queues.set_defaults(handler="queues")
