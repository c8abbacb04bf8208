"""The direct transport: the commands act on the database through an ``App``.

One event loop (an ``asyncio.Runner``) lives as long as the command, so the app's
connection is opened once and closed at the end, whatever the command does in
between.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import PerdureError, RegistrationError, RunFailed
from ..schedules import parse_time as slot_time
from ..server import views
from .exits import CommandError, Exit, from_perdure, usage
from .transport import ACTIONS, Json, RunQuery, StartRequest, Transport

if TYPE_CHECKING:
    from ..app import App
    from ..client import Handle

T = TypeVar("T")


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (attribute defaults to ``app``) from the current
    directory or ``PYTHONPATH``; a usage error if it is not a ``perdure.App``."""
    from ..app import App

    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise usage(f"{spec!r} names no module; write MODULE:NAME, e.g. myproject.workflows:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise usage(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise usage(
            f"{spec!r} is not a perdure.App; write MODULE:NAME, e.g. myproject.workflows:app"
        )
    return app


def parse_time(text: str) -> datetime:
    """An ISO-8601 timestamp of a filter (the CLI has checked it)."""
    return datetime.fromisoformat(text)


class DirectTransport(Transport):
    """Commands on the database of ``app`` (a bare ``App(url)`` when no code is needed)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.where = app.backend.url  # the backend masks passwords
        self._runner = asyncio.Runner()

    def _do(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._runner.run(coro)
        except PerdureError as exc:
            raise from_perdure(exc) from None

    def schedules(self, verb: str, schedule_id: str | None, body: Json) -> Any:
        schedules = self.app.schedules

        async def go() -> Any:
            if verb == "list":
                return {"schedules": [s.to_json() for s in await schedules.list()]}
            if verb == "create":
                return (await schedules.create(body.pop("workflow"), **body)).to_json()
            assert schedule_id is not None
            if verb == "show":
                return (await schedules.get(schedule_id)).to_json()
            if verb in ("pause", "resume"):
                changed = await getattr(schedules, verb)(schedule_id)
                found = await schedules.get(schedule_id)
                return {"changed": changed, "schedule": found.to_json()}
            if verb == "delete":
                await schedules.delete(schedule_id)
                return {"deleted": True}
            if verb == "trigger":
                at = slot_time(body["at"]) if body.get("at") else None
                return (await schedules.trigger(schedule_id, at)).id  # shown as a run, below
            assert verb == "backfill"
            start, end = slot_time(body["start"]), slot_time(body["end"])
            return {"runs": await schedules.backfill(schedule_id, start, end)}

        async def with_code() -> Any:
            try:
                return await go()
            except RegistrationError as exc:  # a workflow this process has no code for
                raise usage(
                    f"{exc}; on the database directly, the app's code is needed: pass "
                    "MODULE:APP (or --app MODULE:APP), or use --server URL"
                ) from None

        answer = self._do(with_code())
        return self.run(answer) if verb == "trigger" else answer

    def close(self) -> None:
        try:
            self._runner.run(self.app.close())
        finally:
            self._runner.close()

    # -- definitions ------------------------------------------------------------------

    def definitions(self) -> list[Json]:
        return self.app.definitions()

    def definition(self, name: str) -> Json:
        for found in self.app.definitions():
            if found["name"] == name:
                wf = self.app.workflows[name]
                if wf.definition is not None:
                    return {**found, "mermaid": wf.definition.mermaid()}
                return found
        raise self._unknown(name)

    def _unknown(self, name: str) -> CommandError:
        known = ", ".join(sorted(d["name"] for d in self.app.definitions())) or "none"
        return CommandError(
            f"no workflow, DAG or state machine named {name!r} (this app has: {known})",
            Exit.NOT_FOUND,
            error_code="definition_not_found",
        )

    # -- runs -------------------------------------------------------------------------

    def start(self, request: StartRequest) -> Json:
        name = request.workflow
        kinds = {d["name"]: d["kind"] for d in self.app.definitions()}
        if name not in kinds:
            raise self._unknown(name)
        options = {k: v for k, v in request.body().items() if k not in ("workflow", "args")}
        kwargs = options.pop("kwargs")

        async def go() -> str:
            if kinds[name] == "state_machine":
                return await self._trigger(request)
            # The checks the server makes: the arguments must fit the workflow's signature
            # and the types its parameters declare.
            self.app.check_call(name, request.args, kwargs)
            handle: Handle[Any] = await self.app.start(name, *request.args, **options, **kwargs)
            return handle.id

        try:
            run_id = self._do(go())
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc), Exit.USAGE, error_code="invalid_arguments") from None
        return self.run(run_id)

    async def _trigger(self, request: StartRequest) -> str:
        """A state machine starts through its ``trigger``: a key and a record."""
        how = (
            f"{request.workflow!r} is a state machine: start it with --key KEY and "
            "--kwargs '{\"record\": RECORD}' (and --id ID if you like)"
        )
        args, kwargs = request.args, request.kwargs
        others = [
            f
            for f in ("id_policy", "queue", "priority", "delay", "timeout", "dedup_key")
            if getattr(request, f) is not None
        ]
        if others or len(args) > 1 or set(kwargs) - {"record"} or (args and kwargs):
            raise usage(how)
        if request.key is None:
            raise usage(f"--key is required: {how}")
        machine = self.app.workflows[request.workflow].definition
        record = kwargs.get("record", args[0] if args else None)
        # trigger checks the record: InvalidArguments, a usage error.
        handle: Handle[Any] = await machine.trigger(request.key, record, id=request.id)
        return handle.id

    def list_runs(
        self, query: RunQuery, limit: int, cursor: str | None
    ) -> tuple[list[Json], str | None]:
        async def page() -> tuple[list[Json], str | None]:
            runs, after = await self.app.list_runs_page(
                **_filters(query), limit=limit, cursor=cursor
            )
            return [views.run(info) for info in runs], after

        try:
            return self._do(page())
        except ValueError as exc:
            raise usage(f"{exc} (use a --cursor `perdure runs list` printed)") from None

    def run(self, run_id: str) -> Json:
        async def get() -> Json:
            out: Json = views.run(await self.app.get_run(run_id))
            given, result = await self.app.run_data(run_id)
            out["result"] = result
            out["input"] = given if isinstance(given, dict) else None
            return out

        return self._do(get())

    def steps(self, run_id: str) -> list[Json]:
        async def get() -> list[Json]:
            return [views.step(s) for s in await self.app.handle(run_id).steps()]

        return self._do(get())

    def logs(self, run_id: str) -> list[Json]:
        async def get() -> list[Json]:
            return [views.log(line) for line in await self.app.handle(run_id).logs()]

        return self._do(get())

    def journal(self, run_id: str) -> list[Json]:
        async def get() -> list[Json]:
            entries = await self.app.handle(run_id).journal()
            return [views.journal_entry(self.app, e) for e in entries]

        return self._do(get())

    def children(self, run_id: str) -> list[Json]:
        async def get() -> list[Json]:
            await self.app.handle(run_id).status()  # an unknown run is an error
            return [views.run(info) async for info in self.app.list_runs(parent=run_id)]

        return self._do(get())

    def send(self, run_id: str, topic: str | None, message: Any, key: str | None) -> bool:
        async def go() -> bool:
            handle = self.app.handle(run_id)
            await handle.status()  # a message to an unknown run is an error
            return await handle.send(topic, message, key=key)

        return self._do(go())

    def act(self, run_id: str, action: str, reason: str, by: str | None) -> tuple[bool, Json]:
        assert action in ACTIONS

        async def go() -> tuple[bool, Json]:
            handle = self.app.handle(run_id)
            if action == "cancel":
                changed = await handle.cancel(reason or "cancelled by request")
            elif action == "retry":
                await self.app.retry(run_id, reason, by=by)
                changed = True
            else:
                changed = bool(await getattr(self.app, action)(run_id, reason, by=by))
            return changed, views.run(await handle.info())

        return self._do(go())

    def fork(self, run_id: str, from_step: int, new_id: str | None, by: str | None) -> Json:
        async def go() -> str:
            handle: Handle[Any] = await self.app.fork(run_id, from_step, id=new_id, by=by)
            return handle.id

        try:
            return self.run(self._do(go()))
        except ValueError as exc:
            raise usage(str(exc)) from None

    def delete(self, run_id: str) -> None:
        async def go() -> None:
            await self.app.delete(run_id)

        self._do(go())

    def purge(self, older_than: float, progress: Callable[[int], None]) -> int:
        deleted = self._do(self.app.purge(older_than))
        progress(deleted)
        return deleted

    def wait(self, run_id: str) -> Json:
        async def until_ended() -> None:
            with contextlib.suppress(RunFailed):  # the run object says how it ended
                await self.app.handle(run_id).result()

        self._do(until_ended())
        return self.run(run_id)

    def workers(self) -> list[Json]:
        return [views.worker(w) for w in self._do(self.app.workers())]

    def queues(self) -> list[Json]:
        async def get() -> list[Json]:
            return [
                views.queue(declared, await self.app.count_runs(queue=declared.name))
                for declared in self.app.queues
            ]

        return self._do(get())

    # -- what only the database (and the app's code) can do ----------------------------

    def migrate(self) -> None:
        """Create or upgrade perdure's tables (every backend migrates when it opens)."""
        self._do(self.app.open())

    def export(self, run_id: str) -> Json:
        return self._do(self.app.export_run(run_id))

    def replay(self, run_ids: list[str], files: list[str], unfinished: bool) -> list[Any]:
        """Replay runs with the app's code; the ``ReplayResult`` of each."""

        async def go() -> list[Any]:
            results = [self.app.replay_file(path) for path in files]
            ids = list(run_ids)
            if unfinished:
                for status in ("pending", "running", "paused", "held"):
                    ids.extend([r.id async for r in self.app.list_runs(status=status)])
            results.extend([await self.app.replay(run_id) for run_id in ids])
            return results

        return self._do(go())


def _filters(query: RunQuery) -> dict[str, Any]:
    return {
        "workflow": query.workflow,
        "status": query.status,
        "key": query.key,
        "parent": query.parent,
        "queue": query.queue,
        "created_after": parse_time(query.created_after) if query.created_after else None,
        "created_before": parse_time(query.created_before) if query.created_before else None,
    }
