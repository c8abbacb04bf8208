"""A state machine compiled onto the kernel: one workflow per machine, one run per
record, one ordinary step per status.

The run's workflow walks the graph (see ``walk``): on entering a status it publishes
the status and the record as run events, runs that status's step (a perdure step
named ``<machine>.<STATUS>``, so retries, retry-from-failed-step, fork, pause, cancel
and replay work as for any workflow), then waits, durably, for a callback, a
connection or the status's timeout. External input (``callback_for``, another machine
reaching a status) arrives as messages on the run's ``perdure.machine`` topic; each
carries the transition it was meant for, so input that arrives after the run moved on
is dropped.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import inspect
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic

from ..client import Handle
from ..codec import misfit
from ..errors import (
    CallbackRejected,
    InvalidArguments,
    InvalidTransition,
    MachineRunActive,
    RegistrationError,
    RunDeduplicated,
    RunNotFound,
)
from ..queues import check_name
from ..records import IdPolicy, RunStatus
from ..retry import Retry, seconds
from ..workflow import api
from ..workflow.definition import StepFunction, WorkflowFunction
from .graph import CallbackSpec, ConnectSpec, Graph, StepSpec, timeout_spec
from .record import Outcome, Record
from .walk import TOPIC, Answer, Walk

if TYPE_CHECKING:
    from ..app import App

DEFAULT_RETRY = Retry(max_attempts=3)
_FAILURE_POLICIES = ("fail", "pause")


@dataclass(frozen=True)
class MachineRun:
    """Where one run of a machine stands (``machine.get``)."""

    run_id: str
    key: str | None
    status: enum.Enum | None  # None until the run has entered its first status
    record: Any
    run_status: RunStatus  # the run's own status: running, paused, completed, ...
    data_deleted: bool


class StateMachine:
    """A workflow written as statuses and transitions over a typed record.

    Declare it with ``app.state_machine(name, Status, record=Model)``; add a step per
    status (``@machine.step(Status.X, to=[...])``), callbacks, timeouts and
    connections; start a run with ``await machine.trigger(key, record)``.

    Options: ``start`` (the first status; default the enum's first member),
    ``terminal`` (statuses that end the run even if declarations lead out of them
    elsewhere; a status with no way out is terminal anyway), ``retry`` (the steps'
    default :class:`perdure.Retry`), ``on_failure`` (``"fail"``: a step that fails
    for good fails the run; ``"pause"``: it pauses the run, to run the step again on
    resume), ``resume_after`` (with ``"pause"``: resume such a run by itself after
    this long), ``scrub`` (``delete_data``'s function from record to record),
    ``continue_after`` (a run continues as new, keeping its status, record and
    pending input, after this many moves: transitions, repeats and inputs that
    changed nothing; it keeps a record that loops for ever from growing its journal).
    """

    kind = "state_machine"  # in app.definitions()

    def __init__(
        self,
        app: App,
        name: str,
        statuses: type[enum.Enum],
        *,
        record: type[Any] | None = None,
        start: enum.Enum | None = None,
        terminal: Iterable[enum.Enum] = (),
        retry: Retry | None = None,
        on_failure: str = "fail",
        resume_after: float | timedelta | None = None,
        scrub: Callable[[Any], Any] | None = None,
        continue_after: int = 500,
    ) -> None:
        check_name("state machine name", name)
        if not (isinstance(statuses, type) and issubclass(statuses, enum.Enum)) or not list(
            statuses
        ):
            raise RegistrationError(
                f"state machine {name!r}: statuses must be an enum class with members "
                "(e.g. class Status(enum.IntEnum): CREATED = 1; DONE = 2)"
            )
        if name in app.workflows:
            raise RegistrationError(
                f"a workflow named {name!r} is already registered; give the state machine "
                "another name"
            )
        _check_policy(name, on_failure)
        self.app = app
        self.name = name
        self.statuses = statuses
        self.record_type: Any = record if record is not None else Any
        self._records: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(self.record_type)
        first = next(iter(statuses))
        self.graph = Graph(name, statuses, first, frozenset())
        self.graph.start = self.graph.status(start if start is not None else first, "start")
        self.graph.declared_terminal = frozenset(
            self.graph.status(s, "terminal status") for s in terminal
        )
        self.retry = retry or DEFAULT_RETRY
        self.on_failure = on_failure
        self.resume_after = seconds(resume_after)
        if self.resume_after is not None and self.resume_after < 0:
            raise RegistrationError(f"state machine {name!r}: resume_after must not be negative")
        self.scrub = scrub
        if (
            not isinstance(continue_after, int)
            or isinstance(continue_after, bool)
            or (continue_after < 1)
        ):
            raise RegistrationError(
                f"state machine {name!r}: continue_after={continue_after!r}; use a whole "
                "number of 1 or more (moves per generation of a run)"
            )
        self.continue_after = continue_after
        self._steps: dict[tuple[str, enum.Enum | None], StepFunction[..., Any]] = {}
        self._hooks: dict[str, StepFunction[..., Any]] = {}
        self._paused: WorkflowFunction[..., Any] | None = None  # with an on_pause hook
        self.workflow_function = self._compile()
        self._resumer = self._compile_resumer()

    def __repr__(self) -> str:
        return f"<perdure state machine {self.name!r}>"

    # -- declaring -------------------------------------------------------------------------

    def step(
        self,
        status: enum.Enum,
        *,
        to: enum.Enum | Iterable[enum.Enum],
        parallel: int | None = None,
        retry: Retry | None = None,
        on_failure: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare the function run when a record enters ``status``: it gets a
        :class:`perdure.Record` and returns the next status (one of ``to``) or an
        outcome (``r.skip()``, ``r.repeat()``, ``r.pause()``, ``r.cancel()``).

        ``parallel=N`` lets up to N records be in this step at once (across every
        worker: the step runs on a queue ``<machine>.<STATUS>`` of concurrency N).
        ``retry`` and ``on_failure`` override the machine's."""
        source = self.graph.status(status, "step status")
        targets = self.graph.targets(source, to, "step")
        if parallel is not None and (
            not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1
        ):
            raise RegistrationError(
                f"state machine {self.name!r}: parallel={parallel!r} for {source.name}; use a "
                "whole number of 1 or more"
            )
        policy = on_failure if on_failure is not None else self.on_failure
        _check_policy(self.name, policy)

        def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
            spec = StepSpec(source, fn, targets, parallel, retry or self.retry, policy)
            self.graph.add_step(spec)
            queue = None
            if parallel is not None:
                queue = self.app.queue(f"{self.name}.{source.name}", concurrency=parallel)
            self._steps["step", source] = self._transition_step(
                f"{self.name}.{source.name}", fn, source, targets, spec.retry, queue=queue
            )
            return fn

        return declare

    def callback(
        self,
        status: enum.Enum,
        fn: Callable[..., Any],
        *,
        to: enum.Enum | Iterable[enum.Enum],
        retry: Retry | None = None,
    ) -> None:
        """Accept external input in ``status``: ``callback_for(key, status, payload)``
        runs ``fn(record, payload)`` (as a step), which returns the next status (one of
        ``to``) or ``r.skip()`` to ignore the input and keep waiting."""
        source = self.graph.status(status, "callback status")
        targets = self.graph.targets(source, to, "callback")
        self.graph.add_callback(CallbackSpec(source, fn, targets))
        self._steps["callback", source] = self._transition_step(
            f"{self.name}.{source.name}.callback",
            fn,
            source,
            targets,
            retry or self.retry,
            payload=True,
        )

    def timeout(
        self,
        status: enum.Enum,
        *,
        after: float | timedelta | None = None,
        at: datetime | None = None,
        to: enum.Enum | Iterable[enum.Enum],
        fn: Callable[..., Any] | None = None,
    ) -> None:
        """Move a record that is still in ``status`` ``after`` it entered it (or at
        ``at``, a timezone-aware datetime) to ``to``; with ``fn``, run it (as a step)
        to choose among ``to``. A record that left the status first is not touched.
        The timer is durable: restarts keep its deadline."""
        source = self.graph.status(status, "timeout status")
        targets = self.graph.targets(source, to, "timeout")
        self.graph.add_timeout(timeout_spec(self.graph, source, after, at, targets, fn))
        if fn is not None:
            self._steps["timeout", source] = self._transition_step(
                f"{self.name}.{source.name}.timeout", fn, source, targets, self.retry
            )

    def connect(
        self,
        other: StateMachine,
        reached: enum.Enum,
        *,
        waiting_in: enum.Enum,
        to: enum.Enum | Iterable[enum.Enum],
        fn: Callable[..., Any] | None = None,
    ) -> None:
        """Leave ``waiting_in`` once ``other``'s run with the same business key has
        reached ``reached`` (before or after this run got here). Without ``fn`` the
        record moves to ``to`` (one status); ``fn(record, other_record)`` (a step)
        chooses among ``to``."""
        if not isinstance(other, StateMachine) or other.app is not self.app:
            raise RegistrationError(
                f"state machine {self.name!r}: connect() takes another state machine of the "
                "same app"
            )
        wanted = other.graph.status(reached, "connected status")
        source = self.graph.status(waiting_in, "waiting_in status")
        targets = self.graph.targets(source, to, "connection")
        if fn is None and len(targets) != 1:
            raise RegistrationError(
                f"state machine {self.name!r}: the connection for {source.name} names several "
                "statuses in to=; give one, or a function (fn=) that picks among them"
            )
        self.graph.add_connection(ConnectSpec(other, wanted, source, targets, fn))
        other.graph.watchers.setdefault(wanted, []).append((self, source))
        self._steps["connect", source] = self._connection_step(source)
        other._steps["notify", wanted] = other._notify_step(wanted)

    def on_pause(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(record)`` (a step: retried on failure, once per pause) when a run
        pauses: a step answered ``r.pause()`` or failed with ``on_failure="pause"``
        (the hook runs before the pause), or an operator paused it (``app.pause``,
        ``handle.pause()``: the hook runs after, in a run of its own named
        ``<machine>.paused``, with the status and record the run last entered)."""
        self._hook("pause", fn)
        self._paused = self._compile_paused()
        self.workflow_function.when_paused = self._paused_from_outside
        return fn

    def on_cancel(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(record)`` (a step, once) when the run is cancelled, by a step
        answering ``r.cancel()`` or from outside (``handle.cancel()``)."""
        return self._hook("cancel", fn)

    def on_complete(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(record)`` (a step, once) when the run reaches a terminal status."""
        return self._hook("complete", fn)

    def _hook(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if event in self._hooks:
            raise RegistrationError(
                f"state machine {self.name!r} already has an on_{event} hook; one per event"
            )
        machine = self

        async def hook(key: str, run_id: str, status: str, record: Any) -> None:
            r = Record(key, run_id, machine.statuses[status], copy.deepcopy(record))
            await _call(fn, r)

        hook.__annotations__ = {"key": str, "run_id": str, "status": str, "record": Any}
        hook.__qualname__ = hook.__name__ = f"on_{event}"
        self._hooks[event] = self.app.step(name=f"{self.name}.on_{event}", retry=Retry())(hook)
        return fn

    # -- reading the definition -------------------------------------------------------------

    def check(self) -> None:
        """Check the whole graph (every declaration reachable from the start); raises
        RegistrationError. Called by ``trigger``, ``mermaid`` and ``describe``."""
        self.graph.check()

    def mermaid(self) -> str:
        """A Mermaid ``stateDiagram-v2`` with every status and allowed transition."""
        self.check()
        return self.graph.mermaid()

    def describe(self) -> dict[str, Any]:
        """The machine as JSON-ready data (statuses, transitions, steps, timeouts,
        callbacks, connections)."""
        self.check()
        return self.graph.describe()

    # -- running ---------------------------------------------------------------------------

    async def trigger(
        self,
        key: str,
        record: Any = None,
        *,
        start: enum.Enum | None = None,
        id: str | None = None,
    ) -> Handle[Any]:
        """Start a run for business ``key`` with its initial ``record``, at the
        machine's start status (or ``start``). Only one run per key may be active:
        while one is (running or paused), this raises MachineRunActive naming it.
        A record that does not fit the record type raises InvalidArguments, and
        nothing is stored. ``handle.result()`` is the record in its terminal status."""
        check_name("key", key)
        self.check()
        problem = misfit(self.record_type, record)
        if problem is not None:
            raise InvalidArguments(f"bad record for state machine {self.name!r}: {problem}")
        first = self.graph.start if start is None else self.graph.status(start, "start")
        if self.graph.is_terminal(first):
            raise RegistrationError(
                f"state machine {self.name!r}: cannot start at {first.name}, a terminal status"
            )
        try:
            return await self.app.start(
                self.workflow_function,
                key,
                record,
                first.name,
                id=id if id is not None else uuid.uuid4().hex,
                id_policy=IdPolicy.REJECT,
                key=key,
                dedup_key=f"{self.name}:{key}",
            )
        except RunDeduplicated as exc:
            raise MachineRunActive(self.name, key, exc.queue, exc.dedup_key, exc.holder) from None

    async def get(self, key: str, run_id: str | None = None) -> MachineRun:
        """The latest run for ``key`` (or run ``run_id``): its status and record."""
        rec = await self._find(key, run_id)
        handle = self.app.handle(rec.id)
        position = await handle.get_event("status")
        record = await handle.get_event("record")
        deleted = bool(await handle.get_event("data_deleted"))
        return MachineRun(
            rec.id,
            rec.key,
            self.statuses[position["status"]] if position else None,
            self._record(record, lenient=deleted),
            RunStatus(rec.status),
            deleted,
        )

    async def callback_for(self, key: str, status: enum.Enum, payload: Any = None) -> None:
        """Deliver external input to the active run for ``key``, which must be in
        ``status`` (with a callback declared there) and not paused. Otherwise raises
        CallbackRejected and changes nothing. The callback runs on a worker; use
        ``await_status`` to wait for its effect."""
        wanted = self.graph.status(status, "callback status")
        if wanted not in self.graph.callbacks:
            raise RegistrationError(
                f"state machine {self.name!r} has no callback for {wanted.name}; declare one "
                f"with machine.callback({wanted!s}, fn, to=[...])"
            )
        try:
            rec = await self._find(key, None)
        except RunNotFound:
            raise CallbackRejected(self.name, key, None, "it has no run") from None
        if rec.status is RunStatus.PAUSED:
            raise CallbackRejected(self.name, key, rec.id, "the run is paused")
        if rec.status.is_terminal:
            raise CallbackRejected(self.name, key, rec.id, f"its latest run is {rec.status}")
        handle = self.app.handle(rec.id)
        position = await handle.get_event("status")
        if position is None or position["status"] != wanted.name:
            where = position["status"] if position else "not yet in a status"
            raise CallbackRejected(
                self.name, key, rec.id, f"the run is in {where}, not {wanted.name}"
            )
        message = {
            "kind": "callback",
            "status": wanted.name,
            "transition": position["transition"],
            "payload": payload,
        }
        await handle.send(TOPIC, message)

    async def await_status(
        self,
        key: str,
        run_id: str,
        status: enum.Enum,
        *,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Wait until run ``run_id`` (of ``key``) has reached ``status`` and return the
        record as it was on entering it. Raises RunFailed (or RunCancelled) if the run
        ends without reaching it, TimeoutError after ``timeout``."""
        wanted = self.graph.status(status, "awaited status")
        handle = self.app.handle(run_id)
        limit = seconds(timeout)
        async with asyncio.timeout(limit):
            delay = 0.01
            while True:
                reached = await handle.get_event(f"status:{wanted.name}")
                if reached is not None:
                    return self._record(reached)
                info = await handle.info()
                if info.key != key or info.workflow != self.name:
                    raise RunNotFound(run_id)
                if info.status.is_terminal:
                    await handle.result()  # raises for a failed or cancelled run
                    raise CallbackRejected(
                        self.name, key, run_id, f"the run ended without reaching {wanted.name}"
                    )
                await self.app.hub.wait(run_id, delay)
                delay = min(delay * 2, 0.5)

    async def delete_data(self, key: str, run_id: str | None = None) -> MachineRun:
        """Erase the record of an ended run (the latest for ``key``, or ``run_id``):
        its journal is purged and the run is replaced, under the same id, by one that
        completed at once holding the record the machine's ``scrub`` function makes of
        it (default: ``{"deleted": True}``). Active runs are refused (cancel first)."""
        rec = await self._find(key, run_id)
        if not rec.status.is_terminal:
            raise CallbackRejected(
                self.name,
                key,
                rec.id,
                f"data is deleted only for ended runs, this one is {rec.status} (cancel it first)",
            )
        current = await self.get(key, rec.id)
        scrubbed = self.scrub(current.record) if self.scrub is not None else {"deleted": True}
        status = current.status.name if current.status is not None else ""
        handle = await self.app.start(
            self.workflow_function,
            key,
            scrubbed,
            status,
            True,
            id=rec.id,
            id_policy=IdPolicy.REPLACE_ENDED,
            key=key,
        )
        async with asyncio.timeout(60):
            while not (await handle.status()).is_terminal:
                await self.app.hub.wait(rec.id, 0.05)
        return await self.get(key, rec.id)

    async def _find(self, key: str, run_id: str | None) -> Any:
        """The run record of ``run_id``, or the latest run of this machine for ``key``."""
        await self.app.open()
        if run_id is not None:
            rec = await self.app.backend.get_run(run_id)
            if rec is None or rec.workflow != self.name:
                raise RunNotFound(run_id)
            return rec
        async for info in self.app.list_runs(workflow=self.name, key=key, page_size=1):
            rec = await self.app.backend.get_run(info.id)
            if rec is not None:
                return rec
        raise RunNotFound(f"{self.name}:{key}")

    def _record(self, value: Any, *, lenient: bool = False) -> Any:
        """A record read back from JSON, as the machine's record type (``lenient``: as
        it is when it does not fit, like the placeholder of deleted data)."""
        if value is None or self.record_type is Any:
            return value
        try:
            return self._records.validate_python(value)
        except pydantic.ValidationError:
            if lenient:
                return value
            raise

    # -- compiling onto the kernel -------------------------------------------------------------

    def _compile(self) -> WorkflowFunction[..., Any]:
        machine = self

        async def run_machine(
            key: str,
            record: Any,
            status: str,
            scrubbed: bool = False,
            carry: dict[str, Any] | None = None,
        ) -> Any:
            if scrubbed:  # the stand-in for a run whose data was deleted
                api.set_event("data_deleted", True)
                api.set_event("record", record)
                if status:
                    api.set_event("status", {"status": status, "transition": 0})
                return record
            machine.check()
            return await Walk(machine, key, record, carry).run(machine.statuses[status])

        run_machine.__annotations__ = {
            "key": str,
            "record": self.record_type,
            "status": str,
            "scrubbed": bool,
            "carry": dict[str, Any] | None,
            "return": self.record_type,
        }
        wf: WorkflowFunction[..., Any] = WorkflowFunction(run_machine, name=self.name, timeout=None)
        wf.definition = self
        self.app._register(self.app.workflows, self.name, wf, "workflow")
        return wf

    def _compile_resumer(self) -> WorkflowFunction[..., Any] | None:
        """With ``resume_after``: the run that resumes a paused run later, if it is
        still in the pause that started it (not resumed and paused again meanwhile)."""
        if self.resume_after is None:
            return None
        machine = self

        async def resume_if_still_paused(run_id: str, pause: int) -> bool:
            handle = machine.app.handle(run_id)
            if await handle.get_event("pauses") != pause:
                return False
            return await machine.app.resume(run_id, "resumed automatically", by=machine.name)

        resume_if_still_paused.__annotations__ = {"run_id": str, "pause": int, "return": bool}
        resume = self.app.step(name=f"{self.name}.auto_resume", retry=Retry())(
            resume_if_still_paused
        )

        async def schedule_resume(run_id: str, pause: int) -> str:
            handle: Handle[Any] = await machine.app.start(
                f"{machine.name}.auto_resume",
                run_id,
                pause,
                id=f"{run_id}.resume.{pause}",
                delay=machine.resume_after,
            )
            return handle.id

        schedule_resume.__annotations__ = {"run_id": str, "pause": int, "return": str}
        self._steps["schedule_resume", None] = self.app.step(
            name=f"{self.name}.schedule_resume", retry=Retry()
        )(schedule_resume)

        async def auto_resume(run_id: str, pause: int) -> bool:
            return bool(await resume(run_id, pause))

        auto_resume.__annotations__ = {"run_id": str, "pause": int, "return": bool}
        wf: WorkflowFunction[..., Any] = WorkflowFunction(
            auto_resume, name=f"{self.name}.auto_resume", timeout=None
        )
        wf.definition = self  # a part of the machine, not a definition of its own
        self.app._register(self.app.workflows, wf.name, wf, "workflow")
        return wf

    def _compile_paused(self) -> WorkflowFunction[..., Any]:
        """The run that calls the on_pause hook for a pause made from outside: it
        reads where the paused run stands, then runs the hook step. A run paused
        before it entered its first status has nothing to react to: no hook."""
        machine = self

        async def paused_state(key: str, run_id: str) -> tuple[str, Any] | None:
            run = await machine.get(key, run_id)
            return None if run.status is None else (run.status.name, run.record)

        paused_state.__annotations__ = {
            "key": str,
            "run_id": str,
            "return": tuple[str, self.record_type] | None,  # type: ignore[name-defined]
        }
        read = self.app.step(name=f"{self.name}.paused_state", retry=Retry())(paused_state)

        async def paused(key: str, run_id: str) -> bool:
            state = await read(key, run_id)
            if state is None:
                return False
            status, record = state
            await machine._hooks["pause"](key, run_id, status, record)
            return True

        paused.__annotations__ = {"key": str, "run_id": str, "return": bool}
        wf: WorkflowFunction[..., Any] = WorkflowFunction(
            paused, name=f"{self.name}.paused", timeout=None
        )
        wf.definition = self  # a part of the machine, not a definition of its own
        self.app._register(self.app.workflows, wf.name, wf, "workflow")
        return wf

    async def _paused_from_outside(self, run_id: str, key: str | None, at: float) -> None:
        # One hook run per pause: the pause's time names it.
        assert self._paused is not None, "set with the on_pause hook"
        await self.app.start(
            self._paused, key or "", run_id, id=f"{run_id}.paused.{round(at * 1e6)}", key=key
        )

    def _transition_step(
        self,
        name: str,
        fn: Callable[..., Any],
        source: enum.Enum,
        targets: tuple[enum.Enum, ...],
        retry: Retry,
        *,
        payload: bool = False,
        queue: Any = None,
    ) -> StepFunction[..., Any]:
        """The perdure step around a user's step, callback or timeout function: it
        works on a copy of the record and checks the answer against ``targets``."""
        machine = self
        payload_type = _second_parameter_type(fn) if payload else Any
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(payload_type)

        async def transition(key: str, run_id: str, record: Any, extra: Any = None) -> Answer:
            r = Record(key, run_id, source, copy.deepcopy(record))
            if payload:
                answer = await _call(fn, r, adapter.validate_python(extra))
            else:
                answer = await _call(fn, r)
            return machine._answer(run_id, fn, source, targets, answer, r.data)

        transition.__annotations__ = {
            "key": str,
            "run_id": str,
            "record": self.record_type,
            "extra": Any,
            "return": tuple[str, str, self.record_type],  # type: ignore[name-defined]
        }
        transition.__qualname__ = transition.__name__ = getattr(fn, "__name__", "transition")
        return self.app.step(name=name, retry=retry, queue=queue)(transition)

    def _answer(
        self,
        run_id: str,
        fn: Callable[..., Any],
        source: enum.Enum,
        targets: tuple[enum.Enum, ...],
        answer: Any,
        data: Any,
    ) -> Answer:
        if isinstance(answer, Outcome):
            return answer.kind.value, answer.reason, data
        if isinstance(answer, self.statuses) and answer in targets:
            return "to", answer.name, data
        allowed = ", ".join(t.name for t in targets)
        what = answer.name if isinstance(answer, self.statuses) else repr(answer)
        raise InvalidTransition(
            f"state machine {self.name!r}, run {run_id!r}: {fn.__name__} answered {what} in "
            f"{source.name}, which may only go to {allowed} (or return r.skip(), r.repeat(), "
            "r.pause(), r.cancel()); the record was not changed. Fix the code or the "
            "declaration, then retry the run"
        )

    def _connection_step(self, waiting_in: enum.Enum) -> StepFunction[..., Any]:
        """The step that looks whether a connected machine's run for the key has
        reached its status, and if so picks the next status."""
        machine = self

        async def check_connections(key: str, run_id: str, record: Any) -> Answer:
            for conn in machine.graph.connections[waiting_in]:
                found = await conn.other._reached(key, conn.reached)
                if found is None:
                    continue
                if conn.fn is None:
                    return "to", conn.to[0].name, record
                r = Record(key, run_id, waiting_in, copy.deepcopy(record))
                answer = await _call(conn.fn, r, conn.other._record(found))
                return machine._answer(run_id, conn.fn, waiting_in, conn.to, answer, r.data)
            return "wait", "", record

        check_connections.__annotations__ = {
            "key": str,
            "run_id": str,
            "record": self.record_type,
            "return": tuple[str, str, self.record_type],  # type: ignore[name-defined]
        }
        return self.app.step(name=f"{self.name}.{waiting_in.name}.connect", retry=self.retry)(
            check_connections
        )

    async def _reached(self, key: str, status: enum.Enum) -> Any:
        """The record of this machine's latest run for ``key`` as it entered
        ``status``, or None if that run has not reached it."""
        try:
            rec = await self._find(key, None)
        except RunNotFound:
            return None
        return await self.app.handle(rec.id).get_event(f"status:{status.name}")

    def _notify_step(self, status: enum.Enum) -> StepFunction[..., Any]:
        """The step that tells the machines waiting for ``status`` that this run (of
        some key) has reached it."""
        machine = self

        async def notify_connected(key: str) -> int:
            told = 0
            for other, _ in machine.graph.watchers.get(status, []):
                try:
                    rec = await other._find(key, None)
                except RunNotFound:
                    continue  # it will look for itself when it gets there
                if rec.status.is_terminal:
                    continue
                message = {"kind": "connect", "machine": machine.name, "status": status.name}
                await other.app.handle(rec.id).send(TOPIC, message)
                told += 1
            return told

        notify_connected.__annotations__ = {"key": str, "return": int}
        return self.app.step(name=f"{self.name}.{status.name}.notify", retry=Retry())(
            notify_connected
        )


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user function, sync or async (a sync one on a thread)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


def _second_parameter_type(fn: Callable[..., Any]) -> Any:
    """The annotation of a callback's payload parameter, resolved (Any when absent or
    unresolvable: the payload then comes as decoded JSON)."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2 or params[1].annotation is inspect.Parameter.empty:
        return Any
    annotation = params[1].annotation
    if not isinstance(annotation, str):
        return annotation
    try:
        return typing.get_type_hints(fn)[params[1].name]
    except Exception:  # another parameter's hint may not resolve: try this one alone
        try:
            return eval(annotation, getattr(fn, "__globals__", {}))
        except Exception:
            return Any


def _check_policy(machine: str, policy: str) -> None:
    if policy not in _FAILURE_POLICIES:
        raise RegistrationError(
            f"state machine {machine!r}: on_failure={policy!r}; use 'fail' (the run fails) "
            "or 'pause' (the run pauses, to run the step again on resume)"
        )
