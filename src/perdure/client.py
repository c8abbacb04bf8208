"""Handles on runs: wait for results, send messages, read events, cancel.

A handle needs no worker in its process: it reads and writes the database, and
waits by polling it (immediately woken when the run finishes in this process).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import history
from .clock import to_datetime
from .errors import ErrorInfo, RunCancelled, RunFailed, RunNotFound, RunTerminated
from .history import LogLine, StepRecord
from .records import DEFAULT_QUEUE, InboxKind, JournalEntry, NewInboxItem, RunRecord, RunStatus
from .retry import seconds

if TYPE_CHECKING:
    from .app import App

R = TypeVar("R")

_FIRST_POLL = 0.005  # a run executed by another process: look soon, then back off
_MAX_POLL = 0.25
_LOCAL_POLL = 0.25  # with a local worker the hub wakes us; polls only cover the rest
_LOCAL_MAX_POLL = 1.0


@dataclass(frozen=True)
class RunInfo:
    """A run as an operator sees it."""

    id: str
    workflow: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_id: str | None
    error: ErrorInfo | None
    recoveries: int  # takeovers after a lost worker in a row, with no progress since
    generation: int  # times it continued as new
    journal_len: int
    version: str | None = None  # the code version it is pinned to
    waiting_for: str | None = None  # why no live worker takes it, when it is overdue
    key: str | None = None  # the business key it was started with
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    admitted_at: datetime | None = None  # when its queue let it start (None: waiting)

    @classmethod
    def from_record(cls, rec: RunRecord, waiting_for: str | None = None) -> RunInfo:
        return cls(
            id=rec.id,
            workflow=rec.workflow,
            status=rec.status,
            created_at=to_datetime(rec.created_at),
            started_at=to_datetime(rec.started_at) if rec.started_at else None,
            finished_at=to_datetime(rec.finished_at) if rec.finished_at else None,
            parent_id=rec.parent_id,
            error=ErrorInfo.from_bytes(rec.error) if rec.error else None,
            recoveries=rec.recoveries,
            generation=rec.generation,
            journal_len=rec.journal_len,
            version=rec.version,
            waiting_for=waiting_for,
            key=rec.key,
            queue=rec.queue,
            priority=rec.priority,
            admitted_at=to_datetime(rec.admitted_at) if rec.admitted_at is not None else None,
        )


class Handle(Generic[R]):
    """A run, by id. Get one from ``app.start(...)`` or ``app.handle(run_id)``."""

    def __init__(self, app: App, run_id: str) -> None:
        self._app = app
        self.id = run_id

    def __repr__(self) -> str:
        return f"<perdure.Handle {self.id!r}>"

    async def _record(self) -> RunRecord:
        await self._app.open()
        rec = await self._app.backend.get_run(self.id)
        if rec is None:
            raise RunNotFound(self.id)
        return rec

    async def status(self) -> RunStatus:
        return (await self._record()).status

    async def info(self) -> RunInfo:
        rec = await self._record()
        return RunInfo.from_record(rec, await self._app.explain_wait(rec))

    async def result(self, timeout: float | timedelta | None = None) -> R:
        """Wait for the run to finish and return its result, typed by the workflow's
        return annotation. Raises RunFailed (with the stored error), RunCancelled, or
        TimeoutError after ``timeout`` seconds."""
        rec = await self._wait(lambda r: r.status.is_terminal, seconds(timeout))
        return self._app._outcome(rec)  # type: ignore[no-any-return]

    async def _wait(self, done: Any, timeout: float | None) -> RunRecord:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # With a worker in this process, the hub wakes us when the run finishes here;
        # polling then only covers runs that another process executes.
        local = self._app.hub.has_worker()
        delay, longest = (_LOCAL_POLL, _LOCAL_MAX_POLL) if local else (_FIRST_POLL, _MAX_POLL)
        while True:
            rec = await self._record()
            if done(rec):
                return rec
            wait = delay
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"run {self.id!r} is still {rec.status.value}")
                wait = min(wait, left)
            await self._app.hub.wait(self.id, wait)
            delay = min(delay * 2, longest)

    async def send(self, topic: str | None, message: Any = None, *, key: str | None = None) -> bool:
        """Send ``message`` to the run on ``topic``; it is buffered until the run calls
        ``perdure.receive(topic)``. With ``key``, a repeated send is ignored (returns
        False)."""
        app = self._app
        await app.open()
        payload = app.payloads.encode(message)
        item = NewInboxItem(
            self.id,
            InboxKind.SIGNAL,
            app.clock.now(),
            topic=topic,
            payload=payload,
            key=f"msg:{key}" if key is not None else None,
        )
        delivered = await app.backend.deliver(item, app.clock.now())
        if delivered:
            app.hub.message(self.id)
        return delivered

    async def get_event(self, key: str, timeout: float | timedelta | None = None) -> Any:
        """The last value the run set for ``key``; waits up to ``timeout`` for one to be
        set, then returns None. Reading never changes the run."""
        app = self._app
        await self._record()  # an unknown run is an error, not None
        loop = asyncio.get_running_loop()
        limit = seconds(timeout)
        deadline = None if limit is None else loop.time() + limit
        delay = _FIRST_POLL
        while True:
            data = await app.backend.get_event(self.id, key)
            if data is not None:
                return app.payloads.decode(data)
            if deadline is None:
                return None
            left = deadline - loop.time()
            if left <= 0:
                return None
            await app.hub.wait(self.id, min(delay, left))
            delay = min(delay * 2, _MAX_POLL)

    async def cancel(self, reason: str = "cancelled by request") -> bool:
        """Ask the run to cancel: its in-flight step finishes, nothing new starts, and
        the workflow may catch ``asyncio.CancelledError`` to clean up. Children are
        cancelled too. Returns False if it had already finished or been cancelled."""
        app = self._app
        await app.open()
        rec = await self._record()
        if rec.status is RunStatus.PAUSED:
            # A paused run could not run its cleanup: let it go on, then cancel it.
            await app.resume(self.id, f"to cancel it: {reason}")
        item = NewInboxItem(
            self.id, InboxKind.CANCEL, app.clock.now(), payload=reason.encode(), key="cancel"
        )
        delivered = await app.backend.deliver(item, app.clock.now())
        if delivered:
            app.hub.message(self.id)
            app.hub.changed(self.id)
        return delivered

    async def journal(self) -> list[JournalEntry]:
        """What the run recorded in its current generation, in order (raw entries)."""
        await self._record()  # an unknown run is an error, not an empty journal
        return await self._app.backend.read_journal(self.id)

    async def steps(self) -> list[StepRecord]:
        """The run's steps in position order, with their attempts (finish times,
        errors, logged lines) and results."""
        return history.steps(await self.journal(), self._app.payloads.decode)

    async def logs(self) -> list[LogLine]:
        """The lines its code logged through ``perdure.logger`` (INFO and above)."""
        return history.log_lines(await self.journal())

    async def pause(self, reason: str = "", *, by: str | None = None) -> bool:
        """See :meth:`App.pause`."""
        return await self._app.pause(self.id, reason, by=by)

    async def resume(self, reason: str = "", *, by: str | None = None) -> bool:
        """See :meth:`App.resume`."""
        return await self._app.resume(self.id, reason, by=by)

    async def retry(self, reason: str = "", *, by: str | None = None) -> None:
        """See :meth:`App.retry`."""
        await self._app.retry(self.id, reason, by=by)

    async def terminate(self, reason: str = "", *, by: str | None = None) -> bool:
        """See :meth:`App.terminate`."""
        return await self._app.terminate(self.id, reason, by=by)

    @property
    def sync(self) -> SyncHandle[R]:
        return SyncHandle(self)


class SyncHandle(Generic[R]):
    """The same operations as :class:`Handle`, for synchronous code."""

    def __init__(self, handle: Handle[R]) -> None:
        self._handle = handle
        self.id = handle.id

    def __repr__(self) -> str:
        return f"<perdure.SyncHandle {self.id!r}>"

    def _call(self, coro: Any) -> Any:
        return self._handle._app._portal_call(coro)

    def result(self, timeout: float | timedelta | None = None) -> R:
        return self._call(self._handle.result(timeout))  # type: ignore[no-any-return]

    def status(self) -> RunStatus:
        return self._call(self._handle.status())  # type: ignore[no-any-return]

    def info(self) -> RunInfo:
        return self._call(self._handle.info())  # type: ignore[no-any-return]

    def send(self, topic: str | None, message: Any = None, *, key: str | None = None) -> bool:
        return self._call(self._handle.send(topic, message, key=key))  # type: ignore[no-any-return]

    def get_event(self, key: str, timeout: float | timedelta | None = None) -> Any:
        return self._call(self._handle.get_event(key, timeout))

    def cancel(self, reason: str = "cancelled by request") -> bool:
        return self._call(self._handle.cancel(reason))  # type: ignore[no-any-return]

    def journal(self) -> list[JournalEntry]:
        return self._call(self._handle.journal())  # type: ignore[no-any-return]

    def steps(self) -> list[StepRecord]:
        return self._call(self._handle.steps())  # type: ignore[no-any-return]

    def logs(self) -> list[LogLine]:
        return self._call(self._handle.logs())  # type: ignore[no-any-return]

    def pause(self, reason: str = "", *, by: str | None = None) -> bool:
        return self._call(self._handle.pause(reason, by=by))  # type: ignore[no-any-return]

    def resume(self, reason: str = "", *, by: str | None = None) -> bool:
        return self._call(self._handle.resume(reason, by=by))  # type: ignore[no-any-return]

    def retry(self, reason: str = "", *, by: str | None = None) -> None:
        self._call(self._handle.retry(reason, by=by))

    def terminate(self, reason: str = "", *, by: str | None = None) -> bool:
        return self._call(self._handle.terminate(reason, by=by))  # type: ignore[no-any-return]


def raise_for(rec: RunRecord) -> None:
    """Raise the error a finished, unsuccessful run stored."""
    error = ErrorInfo.from_bytes(rec.error)
    if rec.status is RunStatus.CANCELLED:
        raise RunCancelled(rec.id, error)
    if rec.status is RunStatus.TERMINATED:
        raise RunTerminated(rec.id, error)
    raise RunFailed(rec.id, error)
