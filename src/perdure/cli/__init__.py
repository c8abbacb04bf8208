"""The ``perdure`` command: run workers and the server, and see, start and operate runs,
on the database directly or through a ``perdure serve`` server (see ``docs/cli.md``).

Every failure ends as ``perdure: <message>`` on standard error with an exit status that
says what kind it was (:class:`~perdure.cli.exits.Exit`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ..errors import PerdureError
from . import commands, runs, schedules, serving
from .exits import CommandError, Exit, from_perdure
from .output import Output
from .parser import build
from .session import Session

__all__ = ["main"]

# Commands that moved under `perdure runs`: say where they went.
_MOVED = {
    "show",
    "retry",
    "pause",
    "resume",
    "cancel",
    "terminate",
    "fork",
    "purge",
    "export",
    "replay",
}

_SESSION_COMMANDS: dict[str, Callable[[Session], int]] = {
    "migrate": commands.migrate,
    "runs list": runs.list_runs,
    "runs show": runs.show,
    "runs act": runs.act,
    "runs fork": runs.fork,
    "runs purge": runs.purge,
    "runs export": runs.export,
    "runs replay": runs.replay,
    "start": commands.start,
    "send": commands.send,
    "definitions": commands.definitions,
    "graph": commands.graph,
    "workers": commands.workers,
    "queues": commands.queues,
    "schedules": schedules.command,
}
_PROCESS_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "worker": serving.worker,
    "serve": serving.serve,
    "demo": serving.demo,
}


def main(argv: list[str] | None = None) -> int:
    """Run ``perdure`` with ``argv`` (default: the process's arguments); the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except CommandError as exc:
        print(f"perdure: {exc.message}", file=sys.stderr)
        return int(exc.code)
    except PerdureError as exc:
        failure = from_perdure(exc)
        print(f"perdure: {failure.message}", file=sys.stderr)
        return int(failure.code)
    except KeyboardInterrupt:
        print("perdure: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in _MOVED:
        raise CommandError(
            f"`perdure {first}` is now `perdure runs {first}` (see `perdure runs --help`)",
            Exit.USAGE,
        )
    parser = build()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(f"perdure {__version__}")
        return Exit.OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: str = args.handler
    if handler in _PROCESS_COMMANDS:
        return int(_PROCESS_COMMANDS[handler](args))
    out = Output(
        json_mode=getattr(args, "json", False),
        color=False if getattr(args, "no_color", False) else None,
    )
    session = Session(args, out)
    try:
        return int(_SESSION_COMMANDS[handler](session))
    finally:
        session.close()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
