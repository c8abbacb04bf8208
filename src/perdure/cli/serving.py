"""The long-running commands: ``worker`` (runs workflows), ``serve`` (the HTTP API and
web UI, with a worker) and ``demo``."""

from __future__ import annotations

import argparse

from ..errors import RegistrationError
from .direct import load_app
from .exits import Exit, usage


def worker(args: argparse.Namespace) -> int:
    """Run a worker for the app until SIGINT or SIGTERM."""
    app = load_app(args.app_spec)
    if args.database:
        app.use_database(args.database)
    options: dict[str, object] = {"concurrency": args.concurrency}
    if args.lease_ttl is not None:
        options["lease_ttl"] = args.lease_ttl
    if args.poll_interval is not None:
        options["poll_interval"] = args.poll_interval
    if args.no_cache:
        options["sticky_cache"] = False
    if args.worker_id:
        options["worker_id"] = args.worker_id
    if args.queues:
        names = [name.strip() for name in args.queues.split(",") if name.strip()]
        try:
            for name in names:
                app.queues.get(name)
        except RegistrationError as exc:
            raise usage(str(exc)) from None
        options["queues"] = names
    print(f"perdure worker: {len(app.workflows)} workflow(s) on {app.backend.url}", flush=True)
    app.run_worker(**options)
    return Exit.OK


def serve(args: argparse.Namespace) -> int:
    """Serve the HTTP API and the web UI (and, unless --no-worker, a worker) until
    SIGINT or SIGTERM."""
    try:
        import starlette  # noqa: F401  (the server extra: said before anything starts)
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise usage(
            f"perdure serve needs the server extra ({exc.name} is not installed): "
            "pip install 'perdure[server]'"
        ) from None
    from ..server import load_tokens
    from ..server import serve as run_server

    app = load_app(args.app_spec)
    if args.database:
        app.use_database(args.database)
    tokens = None if args.no_auth else load_tokens(args.tokens_file)
    run_server(
        app,
        host=args.host,
        port=args.port,
        tokens=tokens,
        auth=not args.no_auth,
        worker=not args.no_worker,
    )
    return Exit.OK


def demo(args: argparse.Namespace) -> int:
    from ..demo import main as demo_main

    return demo_main(args.database)
