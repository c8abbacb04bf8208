"""The App: where workflows and steps are registered, and the entry point to run them."""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from . import operations, replayer
from .backends import open_backend, resolve_url
from .backends.base import Backend, Feature
from .client import Handle, RunInfo, SyncHandle, raise_for
from .clock import Clock
from .codec import Codec, Payloads, misfit
from .errors import (
    ConfigurationError,
    InvalidArguments,
    RegistrationError,
    RunConflict,
    RunExists,
    RunNotFound,
    RunStateError,
    SerializationError,
)
from .hub import Hub
from .operations import default_actor
from .portal import Portal
from .queues import ROUTED_STEP_PREFIX, Queue, Queues, Rate, check_name, check_priority
from .records import DEFAULT_QUEUE, IdPolicy, NewRun, RunFilter, RunRecord, RunStatus
from .replayer import ReplayResult
from .retry import Retry, seconds
from .schedules import SCHEDULER, Schedules, compile_scheduler
from .signals import stop_event
from .worker import Worker, registry
from .worker.registry import WorkerInfo, alive_after, why_waiting
from .workflow.definition import StepDecorator, StepFunction, WorkflowFunction, routed_runner

if TYPE_CHECKING:
    import enum

    from .dag import Dag
    from .statemachine import StateMachine
    from .webhooks import Parser, Webhook

P = ParamSpec("P")
R = TypeVar("R")


class App:
    """A registry of workflows and steps bound to one database.

    ``App()`` uses ``$PERDURE_DATABASE_URL`` or the SQLite file ``./perdure.db``;
    ``App("memory://")`` keeps everything in memory (tests). The backend is opened on
    first use, so a process that only starts and reads runs needs no worker.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        codec: Codec | None = None,
        clock: Clock | None = None,
        lease_ttl: float = 15.0,
        poll_interval: float | None = None,
        sticky_cache: bool = True,
        max_recoveries: int | None = 10,
        retention: float | timedelta | None = None,
        version: str | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.backend: Backend = open_backend(self.url)
        self.payloads = Payloads(codec)
        self.clock = clock or Clock()
        self.hub = Hub()
        self.lease_ttl = lease_ttl
        multi = Feature.MULTI_PROCESS in self.backend.features
        self.poll_interval = poll_interval if poll_interval is not None else (0.2 if multi else 1.0)
        self.sticky_cache = sticky_cache
        if max_recoveries is not None and max_recoveries < 0:
            raise ValueError("max_recoveries must be >= 0, or None for no limit")
        self.max_recoveries = max_recoveries
        if version is not None and (not isinstance(version, str) or not version):
            raise ValueError("version must be a non-empty string, or None for unpinned runs")
        self.version = version
        self.retention = seconds(retention) if retention is not None else None
        if self.retention is not None and self.retention <= 0:
            raise ValueError("retention must be a positive duration, or None to keep runs")
        self.workflows: dict[str, WorkflowFunction[..., Any]] = {}
        self.steps: dict[str, StepFunction[..., Any]] = {}
        self.queues = Queues()
        self.webhooks: dict[str, Webhook] = {}  # by name: POST /hooks/{name} (perdure[server])
        self._opened = False
        self._open_lock = threading.Lock()
        self._embedded: Worker | None = None
        self._portal: Portal | None = None
        self.schedules = Schedules(self)

    def __repr__(self) -> str:
        return f"<perdure.App {self.backend.url!r}>"  # the backend masks passwords

    def use_database(self, url: str) -> None:
        """Point the app at another database (e.g. ``perdure worker --database``). Only
        before it is opened; every other setting, and every registration, is kept."""
        if self._opened:
            raise ConfigurationError("use_database() must be called before the app is opened")
        self.url = resolve_url(url)
        self.backend = open_backend(self.url)

    # -- registration -------------------------------------------------------------------

    @overload
    def workflow(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> WorkflowFunction[P, R]: ...

    @overload
    def workflow(
        self,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
        queue: Queue | str | None = None,
    ) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], WorkflowFunction[P, R]]: ...

    def workflow(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
        queue: Queue | str | None = None,
    ) -> Any:
        """Declare an ``async def`` workflow. ``timeout`` cancels the run (and its
        children) that long after it was started; the deadline survives restarts.
        ``queue`` is the queue its runs go to unless a start says otherwise."""
        queue_name = self._queue_name(queue)

        def register(func: Callable[..., Any]) -> WorkflowFunction[..., Any]:
            wf: WorkflowFunction[..., Any] = WorkflowFunction(
                func, name=name or func.__name__, timeout=timeout, queue=queue_name
            )
            self._register(self.workflows, wf.name, wf, "workflow")
            return wf

        return register(fn) if fn is not None else register

    @overload
    def step(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> StepFunction[P, Coroutine[Any, Any, R]]: ...

    @overload
    def step(self, fn: Callable[P, R]) -> StepFunction[P, Awaitable[R]]: ...

    @overload
    def step(
        self,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | timedelta | None = None,
        queue: Queue | str | None = None,
    ) -> StepDecorator: ...

    def step(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: float | timedelta | None = None,
        queue: Queue | str | None = None,
    ) -> Any:
        """Declare a step (``async def`` or plain ``def``, which runs on a thread).
        Its result is recorded once; ``retry`` retries failures on durable timers;
        ``timeout`` bounds each attempt. With ``queue``, the step runs (as a run of its
        own) only on workers serving that queue, and the workflow waits for it."""
        queue_name = self._queue_name(queue)

        def register(func: Callable[..., Any]) -> StepFunction[..., Any]:
            st: StepFunction[..., Any] = StepFunction(
                func, name=name or func.__name__, retry=retry, timeout=timeout, queue=queue_name
            )
            self._register(self.steps, st.name, st, "step")
            if queue_name is not None:
                runner = routed_runner(st)
                self._register(self.workflows, runner.name, runner, "workflow")
            return st

        return register(fn) if fn is not None else register

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        per_worker: int | None = None,
        per_key: int | None = None,
        rate: Rate | None = None,
    ) -> Queue:
        """Declare a queue and its limits (see ``perdure.Queue``); every worker and
        every app that starts runs on it should declare it alike. Returns the queue, to
        pass as ``queue=`` to ``start``, ``@app.workflow`` or ``@app.step``."""
        return self.queues.declare(Queue(name, concurrency, per_worker, per_key, rate))

    def _queue_name(self, queue: Queue | str | None) -> str | None:
        """A queue named at declaration time (of a workflow or step), declared now
        (without limits) if it is not yet: ``app.queue`` may give it limits later."""
        if queue is None:
            return None
        if isinstance(queue, Queue):
            return self.queues.declare(queue).name
        name = check_name("queue name", queue)
        self.queues.declare(Queue(name, implicit=True))
        return name

    @staticmethod
    def _register(table: dict[str, Any], name: str, item: Any, kind: str) -> None:
        existing = table.get(name)
        if (
            existing is not None
            and existing.fn is not item.fn
            and (
                getattr(existing.fn, "__qualname__", None) != getattr(item.fn, "__qualname__", None)
                or getattr(existing.fn, "__module__", None) != getattr(item.fn, "__module__", None)
            )
        ):
            raise RegistrationError(
                f"a {kind} named {name!r} is already registered ({existing.fn.__module__}."
                f"{existing.fn.__qualname__}); pass name=... to tell them apart"
            )
        table[name] = item

    def dag(self, name: str, **options: Any) -> Dag:
        """Declare a DAG workflow: tasks with dependencies (see ``perdure.dag``). It is
        registered as a workflow named ``name``; start it like any other."""
        from .dag import Dag

        return Dag(self, name, **options)

    def state_machine(
        self,
        name: str,
        statuses: type[enum.Enum],
        *,
        record: type[Any] | None = None,
        **options: Any,
    ) -> StateMachine:
        """Declare a state-machine workflow over ``statuses`` and a typed ``record``
        (see ``perdure.statemachine``), registered as a workflow named ``name``."""
        from .statemachine import StateMachine

        return StateMachine(self, name, statuses, record=record, **options)

    def definitions(self) -> list[dict[str, Any]]:
        """What the app can run, as JSON-ready data, one entry per definition: a
        code-first workflow (``kind`` "workflow": name, queue, timeout, parameters),
        a DAG (``kind`` "dag": its ``describe()``) or a state machine (``kind``
        "state_machine": its ``describe()``)."""
        found: list[dict[str, Any]] = []
        seen: set[int] = set()
        for wf in self.workflows.values():
            source = wf.definition
            if source is not None:
                if id(source) not in seen:
                    seen.add(id(source))
                    found.append({"kind": source.kind, **source.describe()})
            elif not wf.name.startswith(ROUTED_STEP_PREFIX) and wf.name != SCHEDULER:
                # (a routed step's runner and the scheduler are perdure's, not the user's)
                params = list(inspect.signature(wf.fn).parameters)
                found.append(
                    {
                        "kind": "workflow",
                        "name": wf.name,
                        "queue": wf.queue,
                        "timeout": wf.timeout,
                        "parameters": params,
                    }
                )
        return found

    def workflow_names(self) -> list[str]:
        return list(self.workflows)

    def schedule(
        self,
        workflow: WorkflowFunction[..., Any] | str,
        *,
        cron: str,
        id: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        tz: str = "UTC",
        overlap: str = "allow",
        catch_up: int = 0,
    ) -> str:
        """Declare a schedule in code: run ``workflow`` at each slot of ``cron`` (see
        ``app.schedules.create`` for the options). It is created, or updated to this
        spec, when any worker of this app starts (``async with app``, ``perdure worker``,
        ``perdure serve``, ``TestApp``). Returns its id. Raises InvalidSchedule,
        RegistrationError, InvalidArguments."""
        options: dict[str, Any] = {"tz": tz, "overlap": overlap, "catch_up": catch_up}
        spec = self.schedules.spec(workflow, cron=cron, id=id, args=args, kwargs=kwargs, **options)
        if spec["id"] in self.schedules.declared:
            raise RegistrationError(f"a schedule with id {spec['id']!r} is already declared")
        self.schedules.declared[spec["id"]] = spec
        return str(spec["id"])

    def webhook(self, name: str, *parsers: Parser) -> Webhook:
        """Register ``parsers`` for ``POST /hooks/{name}`` on the API server (see
        ``perdure.webhooks``); the first that returns a trigger wins. Raises
        RegistrationError for a name taken or malformed, or no parser."""
        from .webhooks import Webhook

        hook = Webhook(name, parsers)
        if name in self.webhooks:
            raise RegistrationError(f"a webhook named {name!r} is already registered")
        self.webhooks[name] = hook
        return hook

    def check_call(self, workflow: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Check, without starting anything, that ``args`` and ``kwargs`` (plain JSON,
        as an HTTP client sends them) fit the signature of ``workflow`` and the types
        its parameters declare (pydantic models, dataclasses, ``int``...), the way a
        worker will convert them. Raises RegistrationError for an unknown workflow and
        InvalidArguments (a TypeError) naming the parameter otherwise."""
        fn = self._resolve(workflow).fn
        label = getattr(fn, "__name__", workflow)
        clash = sorted(set(kwargs) & (set(inspect.signature(App.start).parameters) - _CALL))
        if clash:  # start() would take it as its own option
            raise InvalidArguments(
                f"bad arguments for {label}: {clash[0]!r} is a parameter of start(), not "
                "an argument of the workflow; pass that argument by position"
            )
        try:
            signature = inspect.signature(fn)
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"bad arguments for {label}: {exc}") from None
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: the worker will not convert
            return
        for name, value in bound.arguments.items():
            hint = hints.get(name)
            if hint is None or hint is Any:
                continue
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                checked = [(f"{name}[{i}]", item) for i, item in enumerate(value)]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                checked = [(str(key), item) for key, item in value.items()]
            else:
                checked = [(name, value)]
            for where, item in checked:
                problem = misfit(hint, item)
                if problem is not None:
                    raise InvalidArguments(
                        f"bad arguments for {label}: parameter {where!r}: {problem}"
                    )

    def _resolve(self, workflow: WorkflowFunction[..., Any] | str) -> WorkflowFunction[..., Any]:
        # A DAG or a state machine stands for the workflow it compiles to.
        workflow = getattr(workflow, "workflow_function", workflow)
        if isinstance(workflow, WorkflowFunction):
            if self.workflows.get(workflow.name) is not workflow:
                raise RegistrationError(f"workflow {workflow.name!r} is not registered on this app")
            return workflow
        if isinstance(workflow, str):
            found = self.workflows.get(workflow)
            if found is None:
                known = ", ".join(sorted(self.workflows)) or "none"
                raise RegistrationError(f"no workflow named {workflow!r} (registered: {known})")
            return found
        raise TypeError("start() takes a function decorated with @app.workflow, or its name")

    # -- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to the database (and migrate it). Called for you on first use."""
        if self._opened:
            return
        await self.backend.open()
        with self._open_lock:
            self._opened = True

    async def close(self) -> None:
        """Stop the embedded worker (if any) and close the database connection."""
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            await embedded.stop_from_any_loop()
        if self._opened:
            self._opened = False
            await self.backend.close()

    async def __aenter__(self) -> App:
        """Open the database and run an embedded worker on this event loop."""
        await self.open()
        self._embedded = self.worker()
        await self._embedded.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def worker(self, **options: Any) -> Worker:
        """A worker for this app (``async with app.worker(): ...``). Options:
        ``concurrency``, ``lease_ttl``, ``poll_interval``, ``sticky_cache``,
        ``cache_size``, ``cache_idle``, ``threads``, ``shutdown_timeout``, ``worker_id``."""
        compile_scheduler(self)  # every worker runs schedules, whoever created them
        return Worker(self, **options)

    def run_worker(self, **options: Any) -> None:
        """Run a worker until SIGINT/SIGTERM, then shut it down gracefully."""

        async def main() -> None:
            stop = stop_event()
            worker = self.worker(**options)
            await worker.start()
            try:
                await stop.wait()
            finally:
                await worker.stop()
                await self.close()

        asyncio.run(main())

    # -- starting and finding runs ---------------------------------------------------------

    async def start(
        self,
        workflow: WorkflowFunction[P, R] | str,
        *args: Any,
        id: str | None = None,
        timeout: float | timedelta | None = None,
        delay: float | timedelta | None = None,
        id_policy: IdPolicy | str = IdPolicy.USE_EXISTING,
        key: str | None = None,
        queue: Queue | str | None = None,
        priority: int = 0,
        dedup_key: str | None = None,
        **kwargs: Any,
    ) -> Handle[R]:
        """Start a run of ``workflow`` and return its handle.

        ``key`` is your business key (list runs by it; a queue's ``per_key`` limit
        counts by it). ``queue`` overrides the workflow's queue; on a queue with
        limits the run waits its turn, ``priority`` first (higher sooner).
        ``dedup_key``: while an unfinished run of the same queue has it, the start is
        refused with RunDeduplicated.

        What an ``id`` that is taken means is ``id_policy``'s call: by default
        (``use_existing``) the start is idempotent and returns the existing run's
        handle; ``reject`` raises RunExists; ``replace_ended`` and ``replace_failed``
        delete an ended (or ended-unsuccessfully) run and start anew under its id. A
        taken id of another workflow raises RunConflict. Arguments are encoded before
        anything is written; a value that cannot be encoded raises SerializationError
        and nothing is stored.
        """
        policy = IdPolicy(id_policy)
        wf = self._resolve(workflow)
        data = self.payloads.encode_call(wf.fn, args, kwargs)
        run_id = id if id is not None else uuid.uuid4().hex
        # NUL is refused everywhere because some databases (PostgreSQL) cannot store it.
        if not isinstance(run_id, str) or not run_id or len(run_id) > 200 or "\0" in run_id:
            raise ValueError(
                "run id must be a non-empty string of at most 200 characters, without NUL"
            )
        on = self.queues.get(
            queue.name if isinstance(queue, Queue) else queue or wf.queue or DEFAULT_QUEUE
        )
        if key is not None:
            check_name("key", key)
        if dedup_key is not None:
            check_name("dedup_key", dedup_key)
        check_priority(priority)
        await self.open()
        now = self.clock.now()
        limit = seconds(timeout) if timeout is not None else wf.timeout
        start_at = now + (seconds(delay) or 0.0) if delay is not None else None
        new = NewRun(
            run_id,
            wf.name,
            data,
            now,
            timeout=limit,
            start_at=start_at,
            version=self.version,
            key=key,
            queue=on.name,
            priority=priority,
            dedup_key=dedup_key,
            queued=on.admits_by_turn,
        )
        rec, created = await self.backend.create_run(new)
        if not created and rec.workflow != wf.name:
            raise RunConflict(run_id, rec.workflow, wf.name)
        if not created and policy is IdPolicy.REJECT:
            raise RunExists(run_id, rec.status)
        if not created and policy.replaces(rec.status):
            await self.backend.purge_runs(float("inf"), 1, run_id)
            rec, created = await self.backend.create_run(new)
        if created:
            self.hub.work()
        return Handle(self, run_id)

    def handle(self, run_id: str) -> Handle[Any]:
        """A handle on an existing run, by id (checked when first used)."""
        return Handle(self, run_id)

    async def get_run(self, run_id: str) -> RunInfo:
        return await Handle(self, run_id).info()

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | str | None = None,
        parent: str | None = None,
        key: str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[RunInfo]:
        """Runs, newest first, filtered; pages through the whole result."""
        await self.open()
        filt = _run_filter(workflow, status, parent, key, queue, created_after, created_before)
        cursor: str | None = None
        while True:
            page = await self.backend.list_runs(filt, page_size, cursor)
            for info in await self._infos(page.runs):
                yield info
            if page.cursor is None:
                return
            cursor = page.cursor

    async def list_runs_page(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | str | None = None,
        parent: str | None = None,
        key: str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunInfo], str | None]:
        """One page of ``list_runs`` (``limit`` runs after ``cursor``) and the next
        page's cursor (None at the end). ValueError: a bad cursor, a limit below 1."""
        if limit < 1:
            raise ValueError(f"limit={limit!r}: ask for at least one run")
        await self.open()
        filt = _run_filter(workflow, status, parent, key, queue, created_after, created_before)
        page = await self.backend.list_runs(filt, limit, cursor)
        return await self._infos(page.runs), page.cursor

    async def count_runs(
        self,
        *,
        workflow: str | None = None,
        parent: str | None = None,
        key: str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> dict[str, int]:
        """How many runs match, by status (every status, 0 for those with none): one
        counting query on SQL databases."""
        await self.open()
        filt = _run_filter(workflow, None, parent, key, queue, created_after, created_before)
        found = await self.backend.count_runs(filt)
        return {status.value: found.get(status, 0) for status in RunStatus}

    async def run_data(self, run_id: str) -> tuple[Any, Any]:
        """A run's input (``{"args": [...], "kwargs": {...}}``) and result (None unless
        it completed), as plain JSON; either is None when the app's codec cannot read
        it. Raises RunNotFound."""
        await self.open()
        rec = await self.backend.get_run(run_id)
        if rec is None:
            raise RunNotFound(run_id)
        found: list[Any] = []
        for data in (rec.input, rec.result if rec.status is RunStatus.COMPLETED else None):
            try:
                found.append(self.payloads.decode(data))
            except (SerializationError, ValueError):
                found.append(None)
        return found[0], found[1]

    async def delete(self, run_id: str) -> None:
        """Delete one ended run with its journal, now. Raises RunNotFound, and
        RunStateError for a run that has not ended (cancel or terminate it first)."""
        await self.open()
        if not await self.backend.purge_runs(float("inf"), 1, run_id):
            rec = await self.backend.get_run(run_id)
            if rec is None:
                raise RunNotFound(run_id)
            hint = "only ended runs are deleted; cancel or terminate it first"
            raise RunStateError(run_id, rec.status, "delete", hint)

    async def _infos(self, records: list[RunRecord]) -> list[RunInfo]:
        """Runs as operators see them, each overdue one saying why it waits."""
        infos: list[RunInfo] = []
        workers: list[WorkerInfo] | None = None  # read once, if a run is overdue
        for rec in records:
            reason = None
            if self._waiting(rec):
                workers = await self.workers() if workers is None else workers
                reason = why_waiting(rec, workers)
            infos.append(RunInfo.from_record(rec, reason))
        return infos

    # -- operating runs ----------------------------------------------------------------------

    async def pause(self, run_id: str, reason: str = "", *, by: str | None = None) -> bool:
        """Pause a pending or running run: steps in flight finish and are recorded,
        nothing new starts until ``resume``. Returns False if it was paused already."""
        return await operations.pause(self, run_id, by or default_actor(), reason)

    async def resume(self, run_id: str, reason: str = "", *, by: str | None = None) -> bool:
        """Resume a paused run, or bring back a cancelled or terminated one from where
        it stopped. Returns False if it was neither."""
        return await operations.resume(self, run_id, by or default_actor(), reason)

    async def retry(self, run_id: str, reason: str = "", *, by: str | None = None) -> Handle[Any]:
        """Retry a failed, cancelled, terminated, dead-lettered or held run from the
        step that ended it: recorded steps are not run again; the failed step gets a
        fresh set of attempts. Returns its handle."""
        await operations.retry(self, run_id, by or default_actor(), reason)
        return Handle(self, run_id)

    async def terminate(self, run_id: str, reason: str = "", *, by: str | None = None) -> bool:
        """End a run at once, without its cleanup (unlike ``cancel``); in-flight steps'
        results are discarded and unfinished children are terminated. Returns False if
        it had already ended."""
        return await operations.terminate(self, run_id, by or default_actor(), reason)

    async def fork(
        self, run_id: str, from_step: int, *, id: str | None = None, by: str | None = None
    ) -> Handle[Any]:
        """Start a new run that reuses what ``run_id`` recorded at positions before
        ``from_step`` (see its journal) and runs the rest again. The original is
        untouched. Returns the new run's handle."""
        new_id = id if id is not None else uuid.uuid4().hex
        await operations.fork(self, run_id, from_step, new_id, by or default_actor())
        return Handle(self, new_id)

    async def purge(self, older_than: float | timedelta) -> int:
        """Delete runs that ended more than ``older_than`` ago, with their journals;
        runs that have not ended are never touched. Returns how many were deleted."""
        cutoff = self.clock.now() - (seconds(older_than) or 0.0)
        return await operations.purge(self, cutoff)

    def _waiting(self, rec: RunRecord) -> bool:
        """Waiting for its turn in a queue, or due for a while and not held by a live
        worker: worth an explanation."""
        if rec.status is RunStatus.PENDING and rec.queued:
            return True
        now = self.clock.now()
        return (
            rec.status.is_active
            and rec.wake_at is not None
            and rec.wake_at < now - registry.OVERDUE
            and (rec.owner is None or (rec.lease_until or 0.0) < now)
        )

    async def explain_wait(self, rec: RunRecord) -> str | None:
        """Why no live worker takes ``rec``, if it has waited for one for a while (or
        waits for its turn in a queue)."""
        if not self._waiting(rec):
            return None
        return why_waiting(rec, await self.workers())

    async def workers(self) -> list[WorkerInfo]:
        """The workers alive on this app's database (they check in every few seconds)."""
        await self.open()
        since = alive_after(self.lease_ttl, self.clock.now())
        return [WorkerInfo.from_record(w) for w in await self.backend.list_workers(since)]

    # -- checking a deploy ---------------------------------------------------------------

    async def replay(self, run_id: str) -> ReplayResult:
        """Replay a stored run's journal with the code registered on this app, executing
        nothing; ``result.error`` is the NonDeterminismError a worker would hold it
        with, or None. Use it to check new code against runs in flight."""
        return await replayer.replay_run(self, run_id)

    def replay_file(self, path: str | Path) -> ReplayResult:
        """Replay a run exported with ``export_run`` (a JSON file) with this app's code."""
        run, journal = replayer.load_export(path)
        return replayer.replay(self, run, journal)

    async def export_run(self, run_id: str) -> dict[str, Any]:
        """A run and its journal as JSON-ready data, for ``replay_file`` elsewhere."""
        return await replayer.export_run(self, run_id)

    def _outcome(self, rec: RunRecord) -> Any:
        if rec.status is RunStatus.COMPLETED:
            wf = self.workflows.get(rec.workflow)
            hint = self.payloads.return_hint(wf.fn) if wf else Any
            return self.payloads.decode(rec.result, hint)
        raise_for(rec)

    # -- the synchronous surface ------------------------------------------------------------

    def _portal_call(self, coro: Coroutine[Any, Any, R]) -> R:
        with self._open_lock:
            if self._portal is None:
                self._portal = Portal()
            portal = self._portal
        return portal.call(coro)

    def start_sync(
        self,
        workflow: WorkflowFunction[P, R] | str,
        *args: Any,
        id: str | None = None,
        timeout: float | timedelta | None = None,
        delay: float | timedelta | None = None,
        **kwargs: Any,
    ) -> SyncHandle[R]:
        """``start`` for synchronous code; a worker elsewhere runs it."""
        handle = self._portal_call(
            self.start(workflow, *args, id=id, timeout=timeout, delay=delay, **kwargs)
        )
        return SyncHandle(handle)

    def handle_sync(self, run_id: str) -> SyncHandle[Any]:
        return SyncHandle(Handle(self, run_id))

    def run_sync(
        self,
        workflow: WorkflowFunction[P, R] | str,
        *args: Any,
        id: str | None = None,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> R:
        """Start a run and wait for its result, executing it in this process (a worker
        runs on a background thread for the duration). For scripts and sync apps."""

        async def run() -> R:
            worker = self.worker()
            await worker.start()
            try:
                handle: Handle[R] = await self.start(
                    workflow, *args, id=id, timeout=timeout, **kwargs
                )
                return await handle.result()
            finally:
                await worker.stop()

        return self._portal_call(run())

    def close_sync(self) -> None:
        """Close the database and stop the sync bridge thread."""
        if self._portal is not None:
            self._portal.call(self.close())
            self._portal.close()
            self._portal = None


def _run_filter(
    workflow: str | None,
    status: RunStatus | str | None,
    parent: str | None,
    key: str | None,
    queue: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> RunFilter:
    return RunFilter(
        workflow=workflow,
        status=RunStatus(status) if status is not None else None,
        parent_id=parent,
        key=key,
        queue=queue,
        created_after=created_after.timestamp() if created_after else None,
        created_before=created_before.timestamp() if created_before else None,
    )


_CALL = {"args", "kwargs"}  # start()'s parameters that a workflow's keyword cannot clash with
