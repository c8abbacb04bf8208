"""Serving: uvicorn and (optionally) the app's worker on one event loop, until
SIGINT or SIGTERM, then a clean stop (requests in flight finish, the worker hands its
runs back, the database is closed)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import uvicorn

from ..errors import ConfigurationError
from ..signals import stop_event
from .asgi import create_app
from .tokens import load_tokens

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("perdure.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ConfigurationError if that is impossible
    (the port is taken, the address is not this machine's)."""
    try:
        family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from None


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling (``serve`` owns the signals, and must not have
    them raised again after the shutdown), plus a hook when it accepts requests."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._ready is not None and self.started:
            self._ready()


async def serve_async(
    app: App,
    *,
    sock: socket.socket,
    tokens: Mapping[str, str] | None,
    auth: bool = True,
    worker: bool = True,
    stop: asyncio.Event,
    ready: Callable[[], None] | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``app`` on the listening socket ``sock`` until ``stop`` is set. ``ready``
    is called once requests are being accepted."""
    site = create_app(app, tokens=tokens, auth=auth)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        site,
        host=host,
        port=port,
        lifespan="off",
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
    server = _Server(config, ready)
    await app.open()
    embedded = app.worker() if worker else None
    try:
        if embedded is not None:
            await embedded.start()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        await serving
    finally:
        if embedded is not None:
            await embedded.stop()
        await app.close()


def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tokens: Mapping[str, str] | None = None,
    auth: bool = True,
    worker: bool = True,
    log_level: str = "info",
) -> None:
    """Serve the HTTP API, webhooks and web UI of ``app`` on ``host:port`` and, with
    ``worker=True``, run the app's worker in the same event loop; block until SIGINT
    or SIGTERM, then stop cleanly.

    ``tokens`` (token -> scope) default to ``load_tokens()`` ($PERDURE_API_TOKENS).
    Raises ConfigurationError for ``auth=False`` on a host that is not loopback, for
    ``auth=True`` without tokens, and when the address cannot be listened on.
    """
    if not auth and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve without authentication on {host}: anyone who can reach it "
            "could run and delete workflows; use --host 127.0.0.1, or set API tokens "
            "(PERDURE_API_TOKENS or --tokens-file)"
        )
    if auth and tokens is None:
        tokens = load_tokens()
    create_app(app, tokens=tokens, auth=auth)  # refuses bad settings before listening
    sock = listen(host, port)

    async def main() -> None:
        stop = stop_event()
        await serve_async(
            app,
            sock=sock,
            tokens=tokens,
            auth=auth,
            worker=worker,
            stop=stop,
            log_level=log_level,
        )

    try:
        asyncio.run(main())
    finally:
        sock.close()
