"""One command's context: its arguments, where it prints, and how it reaches the runs.

Where the runs are, first match wins: ``--server URL``; ``--database URL`` or
``--app MODULE:APP`` (the app's database, unless ``--database`` says otherwise);
``$PERDURE_SERVER``; ``$PERDURE_DATABASE_URL``; the SQLite file ``./perdure.db``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .direct import DirectTransport, load_app
from .exits import usage
from .output import Output
from .transport import Transport


class Session:
    """The transport is opened on first use and closed by ``close``."""

    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.args = args
        self.out = out
        self._transport: Transport | None = None

    def server(self) -> str | None:
        """The server's URL when the command goes through one, else None."""
        explicit = getattr(self.args, "server", None)
        database = getattr(self.args, "database", None)
        app = getattr(self.args, "app", None)
        if explicit and (database or app):
            raise usage(
                "--server reaches the runs through a server, --database and --app directly: "
                "choose one"
            )
        if explicit:
            return str(explicit)
        if database or app:
            return None
        return os.environ.get("PERDURE_SERVER") or None

    def transport(self, app_spec: str | None = None) -> Transport:
        """The transport this command uses; ``app_spec`` loads the app's code (the
        direct transport's commands that need it: start, definitions, graph)."""
        if self._transport is None:
            server = self.server()
            if server is not None:
                from .remote import RemoteTransport

                token = getattr(self.args, "token", None) or os.environ.get("PERDURE_TOKEN")
                self._transport = RemoteTransport(server, token or None)
            else:
                self._transport = self._direct(app_spec)
        return self._transport

    def direct(self, command: str, app_spec: str | None = None) -> DirectTransport:
        """The direct transport, for the commands only the database can answer."""
        if self.server() is not None:
            raise usage(
                f"`perdure {command}` works on the database directly (its journal, your code); "
                "pass --database URL or --app MODULE:APP instead of --server"
            )
        transport = self.transport(app_spec)
        assert isinstance(transport, DirectTransport)
        return transport

    def _direct(self, app_spec: str | None) -> DirectTransport:
        from ..app import App

        database = getattr(self.args, "database", None)
        spec = app_spec or getattr(self.args, "app", None)
        if spec:
            app = load_app(spec)
            if database:
                app.use_database(database)
            return DirectTransport(app)
        defaulted = not database and not os.environ.get("PERDURE_DATABASE_URL")
        # Do not create an empty ./perdure.db just to find nothing in it.
        if defaulted and self.args.command != "migrate" and not Path("perdure.db").exists():
            raise usage(
                "no database: pass --database URL, --app MODULE:APP or --server URL, or "
                "set $PERDURE_DATABASE_URL or $PERDURE_SERVER (./perdure.db does not exist)"
            )
        return DirectTransport(App(database))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
