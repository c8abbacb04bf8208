"""The ``perdure`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from .errors import ConfigurationError


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
    print(f"perdure worker: {len(app.workflows)} workflow(s) on {app.backend.url}", flush=True)
    app.run_worker(**options)
    return 0


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
    worker.set_defaults(func=_worker)

    demo = sub.add_parser("demo", help="run a demo workflow on a local SQLite file")
    demo.add_argument("--database", default="sqlite:///perdure-demo.db")
    demo.set_defaults(func=_demo)

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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
