"""Cron schedules compiled onto the kernel: one durable scheduler run per schedule.

A schedule is a run of the built-in workflow ``perdure.schedule`` with the id
``schedule:<id>``; its arguments are the schedule's spec. The run loops: a step reads
the time and works out which slots are due, a step per due slot starts the slot's run
with the id ``<id>@<slot time, ISO UTC>`` (an idempotent start, not a child), then it
waits with ``receive(timeout=...)`` (a durable timer) until the next slot or a message
(a changed spec). Since a slot's run id is the slot, a slot started twice (a restart,
several workers, a backfill over it) is the same run. Pausing, resuming and deleting a
schedule pause, resume and terminate its scheduler run.
"""

from __future__ import annotations

import builtins
import inspect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter  # type: ignore[import-untyped]

from .client import Handle
from .errors import (
    InvalidArguments,
    PerdureError,
    RegistrationError,
    RunExists,
    RunNotFound,
    SerializationError,
)
from .queues import ROUTED_STEP_PREFIX
from .records import IdPolicy, RunStatus
from .retry import Retry
from .workflow import api
from .workflow.context import running_app
from .workflow.definition import WorkflowFunction

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "SCHEDULER",
    "InvalidSchedule",
    "ScheduleExists",
    "ScheduleInfo",
    "ScheduleNotFound",
    "Schedules",
]

SCHEDULER = "perdure.schedule"  # the built-in workflow every scheduler run runs
PREFIX = "schedule:"  # a scheduler run's id is PREFIX + the schedule's id
TOPIC = "perdure.schedule"  # messages to a scheduler run (spec updates)
WAKES_PER_GENERATION = 100  # continue as new this often, to keep the journal short
_OVERLAPS = ("allow", "skip")
_EVERY = re.compile(r"@every\s+([1-9][0-9]*)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_BACKFILL = 1000
# A scheduler's own steps (reading the clock, starting a run) retry for a long while:
# a database hiccup must not end the schedule.
_STEP_RETRY = Retry(max_attempts=20, initial_interval=1.0, max_interval=300.0)
_WILD_HOURS = {"@hourly"}  # descriptors that fire every hour
_FIXED_HOURS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"}


class InvalidSchedule(PerdureError, ValueError):
    """A schedule's spec is wrong (cron, time zone, id, option); nothing was stored."""


class ScheduleNotFound(PerdureError, LookupError):
    """No schedule has this id."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(
            f"no schedule {schedule_id!r}; list them with app.schedules.list() "
            "(CLI: perdure schedules list)"
        )
        self.schedule_id = schedule_id


class ScheduleExists(RunExists):
    """``create`` with an id that a schedule has (its scheduler run exists)."""

    def __init__(self, schedule_id: str, status: str) -> None:
        super().__init__(PREFIX + schedule_id, status)
        self.args = (
            f"a schedule with id {schedule_id!r} exists; delete it first, pick another id, "
            "or pass replace=True to update it",
        )
        self.schedule_id = schedule_id


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as operators see it (``app.schedules.get``/``list``).

    ``status`` is its scheduler run's: ``running`` (or ``pending`` before a worker
    took it up), ``paused``, or an ended status if it was stopped from outside."""

    id: str
    workflow: str
    cron: str
    tz: str
    args: list[Any]
    kwargs: dict[str, Any]
    overlap: str
    catch_up: int
    status: str
    paused: bool
    next_at: datetime | None
    last_slot: datetime | None
    last_run: str | None
    skipped: int
    last_error: str | None  # why the last slot that could not start did not

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO-8601 UTC strings)."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else slot_iso(value.timestamp())

        return {
            "id": self.id,
            "workflow": self.workflow,
            "cron": self.cron,
            "tz": self.tz,
            "args": self.args,
            "kwargs": self.kwargs,
            "overlap": self.overlap,
            "catch_up": self.catch_up,
            "status": self.status,
            "paused": self.paused,
            "next_at": iso(self.next_at),
            "last_slot": iso(self.last_slot),
            "last_run": self.last_run,
            "skipped": self.skipped,
            "last_error": self.last_error,
        }


# -- time arithmetic (pure functions, run inside steps) -------------------------------------


def slot_iso(ts: float) -> str:
    """A slot's time as it appears in run ids: ISO-8601 UTC, to the second."""
    return datetime.fromtimestamp(round(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_run_id(schedule_id: str, ts: float) -> str:
    return f"{schedule_id}@{slot_iso(ts)}"


def interval_of(cron: str) -> int | None:
    """The seconds of an ``@every 10m`` spec (units s, m, h, d), None for cron."""
    found = _EVERY.fullmatch(cron.strip())
    return int(found.group(1)) * _UNITS[found.group(2)] if found else None


def check_cron(cron: object) -> str:
    """The spec, checked: 5-field cron, an ``@hourly``-style descriptor or ``@every``."""
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidSchedule(
            "cron must be a non-empty string such as '*/5 * * * *', '@hourly' or '@every 10m'"
        )
    text = cron.strip()
    if text.startswith("@every"):
        if interval_of(text) is None:
            raise InvalidSchedule(
                f"bad interval {cron!r}: write '@every <positive integer><unit>' with unit s, "
                "m, h or d, e.g. '@every 10m'"
            )
        return text
    if text.startswith("@"):
        if text.lower() not in _WILD_HOURS | _FIXED_HOURS:
            raise InvalidSchedule(
                f"unknown descriptor {cron!r}: use @yearly, @annually, @monthly, @weekly, "
                "@daily, @midnight, @hourly or '@every 10m'"
            )
        return text.lower()
    if len(text.split()) != 5:
        raise InvalidSchedule(
            f"bad cron {cron!r}: give the 5 fields minute hour day-of-month month "
            "day-of-week, e.g. '0 9 * * mon-fri'"
        )
    if not croniter.is_valid(text):
        raise InvalidSchedule(
            f"bad cron {cron!r}: fields take numbers, ranges (1-5), lists (1,3), steps "
            "(*/15) and names (jan, mon); descriptors are @yearly, @monthly, @weekly, "
            "@daily, @hourly"
        )
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidSchedule(
            f"cron {cron!r} never fires (a day that no month has?); check the day and month fields"
        ) from None
    return text


def check_tz(tz: object) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise InvalidSchedule("tz must be an IANA time zone name such as 'Europe/Paris'")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'America/New_York'"
        ) from None


def _repeats_hour(cron: str) -> bool:
    """Whether the cron fires at fixed hours (not ``*`` in the hour field): such a
    cron fires once when clocks fall back, not in both copies of the repeated hour,
    as cron daemons do; ``0 * * * *`` fires in both (they are an hour apart)."""
    if cron in _WILD_HOURS:
        return False
    if cron in _FIXED_HOURS:
        return True
    return not cron.split()[1].startswith("*")


def _counts(cron: str, zone: ZoneInfo, slot: datetime) -> bool:
    """False for a slot in the second copy of an hour repeated by a fall-back (when
    the cron fires at fixed hours): its first copy was the slot."""
    local = datetime.fromtimestamp(slot.timestamp(), tz=zone)
    return not (local.fold and _repeats_hour(cron))


def next_slot(cron: str, tz: str, after: float) -> float:
    """The first slot strictly after ``after`` (POSIX seconds)."""
    every = interval_of(cron)
    if every is not None:  # aligned on the epoch, so restarts find the same slots
        return (math.floor(after / every) + 1) * every
    zone = ZoneInfo(tz)
    it = croniter(cron, datetime.fromtimestamp(after, tz=zone))
    while True:
        found: datetime = it.get_next(datetime)
        if _counts(cron, zone, found):
            return found.timestamp()


def slots_back(cron: str, tz: str, at: float, since: float, limit: int) -> list[float]:
    """Up to ``limit`` latest slots in ``(since, at]``, oldest first."""
    every = interval_of(cron)
    found: list[float] = []
    if every is not None:
        slot = math.floor(at / every) * every
        while slot > since and len(found) < limit:
            found.append(float(slot))
            slot -= every
        return found[::-1]
    zone = ZoneInfo(tz)
    it = croniter(cron, datetime.fromtimestamp(at + 1, tz=zone))
    while len(found) < limit:
        prev: datetime = it.get_prev(datetime)
        if prev.timestamp() <= since:
            break
        if prev.timestamp() <= at and _counts(cron, zone, prev):
            found.append(prev.timestamp())
    return found[::-1]


def slots_between(cron: str, tz: str, start: float, end: float) -> list[float]:
    """Every slot in ``[start, end]`` (at most 1000: backfill in parts)."""
    found: list[float] = []
    slot = next_slot(cron, tz, start - 1e-6)
    while slot <= end:
        if len(found) == _MAX_BACKFILL:
            raise InvalidSchedule(
                f"more than {_MAX_BACKFILL} slots between the two times; backfill a "
                "shorter range at a time"
            )
        found.append(slot)
        slot = next_slot(cron, tz, slot)
    return found


# -- the scheduler run ---------------------------------------------------------------------


def _wants_scheduled_at(app: App, workflow: str) -> bool:
    wf = app.workflows.get(workflow)
    return wf is not None and "scheduled_at" in inspect.signature(wf.fn).parameters


async def start_slot(app: App, spec: Mapping[str, Any], slot: float) -> str:
    """Start (idempotently: the slot is the id) the run of ``slot``; returns its id."""
    kwargs = dict(spec["kwargs"])
    if _wants_scheduled_at(app, spec["workflow"]):
        kwargs["scheduled_at"] = datetime.fromtimestamp(slot, tz=UTC)
    handle: Handle[Any] = await app.start(
        spec["workflow"], *spec["args"], id=slot_run_id(spec["id"], slot), **kwargs
    )
    return handle.id


def compile_scheduler(app: App) -> WorkflowFunction[..., Any]:
    """Register ``perdure.schedule`` and its steps on ``app`` (once)."""
    existing = app.workflows.get(SCHEDULER)
    if existing is not None:
        return existing

    def current() -> App:
        # The app of the worker running the step: a test app runs the same registry.
        found: App | None = running_app.get()
        return found if found is not None else app

    async def plan(spec: dict[str, Any], cursor: float) -> dict[str, Any]:
        # Time and calendars are read here, in a step, so replays see what was decided.
        now = current().clock.now()
        due = slots_back(spec["cron"], spec["tz"], now, cursor, 1 + int(spec["catch_up"]))
        upcoming = next_slot(spec["cron"], spec["tz"], max(cursor, now))
        return {"now": now, "due": due, "next": upcoming}

    plan.__annotations__ = {"spec": dict[str, Any], "cursor": float, "return": dict[str, Any]}
    plan_step = app.step(name=f"{SCHEDULER}.plan", retry=_STEP_RETRY)(plan)

    async def fire(spec: dict[str, Any], slot: float, previous: str | None) -> dict[str, Any]:
        the_app = current()
        if spec["overlap"] == "skip" and previous is not None:
            try:
                status = await the_app.handle(previous).status()
            except RunNotFound:
                status = RunStatus.COMPLETED
            if not status.is_terminal and status is not RunStatus.HELD:
                return {"skipped": True}  # the previous slot's run is still going
        try:
            return {"run": await start_slot(the_app, spec, slot)}
        except (RegistrationError, InvalidArguments, SerializationError) as exc:
            # Retrying will not help (the workflow is gone from this worker's code, or
            # its signature changed): say so, and keep the schedule alive.
            api.logger.warning("slot %s not started: %s", slot_iso(slot), exc)
            return {"skipped": True, "error": f"{slot_iso(slot)}: {exc}"}

    fire.__annotations__ = {
        "spec": dict[str, Any],
        "slot": float,
        "previous": str | None,
        "return": dict[str, Any],
    }
    fire_step = app.step(name=f"{SCHEDULER}.fire", retry=_STEP_RETRY)(fire)

    async def run_schedule(
        spec: dict[str, Any], cursor: float, state: dict[str, Any] | None = None
    ) -> None:
        state = dict(state or {"last_slot": None, "last_run": None, "skipped": 0, "error": None})
        for _ in range(WAKES_PER_GENERATION):
            planned = await plan_step(spec, cursor)
            for slot in planned["due"]:
                fired = await fire_step(spec, slot, state["last_run"])
                if "run" in fired:
                    state["last_run"], state["error"] = fired["run"], None
                else:
                    state["skipped"] += 1
                    state["error"] = fired.get("error", state["error"])
                state["last_slot"] = cursor = slot
            cursor = max(cursor, planned["now"])
            api.set_event("schedule", {"spec": spec, "next_at": planned["next"], **state})
            wait = max(0.0, planned["next"] - planned["now"])
            message = await api.receive(TOPIC, timeout=wait)
            if isinstance(message, dict) and isinstance(message.get("update"), dict):
                spec = message["update"]
        api.continue_as_new(spec, cursor, state)

    run_schedule.__annotations__ = {
        "spec": dict[str, Any],
        "cursor": float,
        "state": dict[str, Any] | None,
        "return": None,
    }
    wf: WorkflowFunction[..., Any] = WorkflowFunction(run_schedule, name=SCHEDULER, timeout=None)
    app._register(app.workflows, SCHEDULER, wf, "workflow")
    return wf


# -- the client side -----------------------------------------------------------------------


class Schedules:
    """Schedules of ``app`` (``app.schedules``): create, read, pause, resume, delete,
    trigger and backfill them. Every method raises ScheduleNotFound for an unknown id."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.declared: dict[str, dict[str, Any]] = {}  # by app.schedule(), ensured on start

    def spec(
        self,
        workflow: Any,
        *,
        cron: str,
        id: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        tz: str = "UTC",
        overlap: str = "allow",
        catch_up: int = 0,
    ) -> dict[str, Any]:
        """A checked spec (see ``create``); raises InvalidSchedule, RegistrationError
        (unknown workflow) or InvalidArguments (arguments that do not fit it)."""
        name = self.app._resolve(workflow).name
        if name == SCHEDULER or name.startswith(ROUTED_STEP_PREFIX):
            raise RegistrationError(f"{name!r} is perdure's own workflow; schedule one of yours")
        schedule_id = id if id is not None else name
        if (
            not isinstance(schedule_id, str)
            or not schedule_id
            or len(schedule_id) > 150
            or "@" in schedule_id
            or "\0" in schedule_id
        ):
            raise InvalidSchedule(
                "schedule id must be a non-empty string of at most 150 characters, "
                "without '@' or NUL"
            )
        text = check_cron(cron)
        check_tz(tz)
        if overlap not in _OVERLAPS:
            raise InvalidSchedule(f"overlap must be 'allow' or 'skip', not {overlap!r}")
        if isinstance(catch_up, bool) or not isinstance(catch_up, int) or catch_up < 0:
            raise InvalidSchedule(f"catch_up must be an integer >= 0, not {catch_up!r}")
        if catch_up > _MAX_BACKFILL:
            raise InvalidSchedule(f"catch_up is at most {_MAX_BACKFILL}; backfill the rest")
        # Stored as JSON (the scheduler run's input), so kept as JSON from the start:
        # SerializationError for a value that is not; a spec read back compares equal.
        payloads = self.app.payloads
        call_args, call_kwargs = payloads.decode(payloads.encode([list(args), dict(kwargs or {})]))
        checked = dict(call_kwargs)
        if _wants_scheduled_at(self.app, name):
            # Any time will do: the check is of the type a slot's time has.
            checked.setdefault("scheduled_at", datetime.fromtimestamp(0, tz=UTC).isoformat())
        self.app.check_call(name, call_args, checked)
        return {
            "id": schedule_id,
            "workflow": name,
            "cron": text,
            "tz": tz,
            "args": call_args,
            "kwargs": call_kwargs,
            "overlap": overlap,
            "catch_up": catch_up,
        }

    async def create(
        self,
        workflow: Any,
        *,
        cron: str,
        id: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        tz: str = "UTC",
        overlap: str = "allow",
        catch_up: int = 0,
        replace: bool = False,
    ) -> ScheduleInfo:
        """Create a schedule: run ``workflow(*args, **kwargs)`` at each slot of ``cron``
        (5-field cron, ``@hourly``-style, or ``@every 10m``) in time zone ``tz``. ``id``
        defaults to the workflow's name. ``overlap="skip"`` skips a slot while the
        previous slot's run has not ended. On waking after slots were missed (workers
        down, schedule paused), the latest missed slot runs, and ``catch_up`` more of
        the ones before it (at most 1000); older ones do not run (``backfill`` runs them).

        Raises InvalidSchedule, RegistrationError, InvalidArguments; ScheduleExists (a
        RunExists) if the id is taken and ``replace`` is false (with ``replace``, the
        running schedule is updated to this spec). Nothing is stored on error."""
        spec = self.spec(
            workflow,
            cron=cron,
            id=id,
            args=args,
            kwargs=kwargs,
            tz=tz,
            overlap=overlap,
            catch_up=catch_up,
        )
        await self.ensure(spec, replace=replace)
        return await self.get(spec["id"])

    async def ensure(self, spec: dict[str, Any], *, replace: bool = True) -> None:
        """Start the scheduler run of ``spec``; if one runs already, update it to
        ``spec`` (``replace``) or raise ScheduleExists. A scheduler run that has ended
        (terminated from outside, say) is replaced by a new one."""
        compile_scheduler(self.app)
        run_id = PREFIX + spec["id"]
        now = self.app.clock.now()
        try:
            await self.app.start(SCHEDULER, spec, now, id=run_id, id_policy=IdPolicy.REJECT)
            return
        except RunExists as exc:
            if RunStatus(exc.status).is_terminal:
                policy = IdPolicy.REPLACE_ENDED
                await self.app.start(SCHEDULER, spec, now, id=run_id, id_policy=policy)
                return
            if not replace:
                raise ScheduleExists(spec["id"], exc.status) from None
        if await self._spec(run_id) != spec:
            await self.app.handle(run_id).send(TOPIC, {"update": spec})

    async def ensure_declared(self) -> None:
        """Start (or update) every schedule declared with ``app.schedule``."""
        for spec in self.declared.values():
            await self.ensure(spec, replace=True)

    async def _spec(self, run_id: str) -> dict[str, Any]:
        state = await self._state(run_id)
        if state is not None:
            return dict(state["spec"])
        data, _ = await self.app.run_data(run_id)
        return dict(data["args"][0])

    async def _state(self, run_id: str) -> dict[str, Any] | None:
        try:
            state = await self.app.handle(run_id).get_event("schedule", timeout=0)
        except (TimeoutError, LookupError):
            return None
        return state if isinstance(state, dict) else None

    async def get(self, schedule_id: str) -> ScheduleInfo:
        """One schedule. Raises ScheduleNotFound."""
        run_id = PREFIX + schedule_id
        try:
            info = await self.app.get_run(run_id)
        except RunNotFound:
            raise ScheduleNotFound(schedule_id) from None
        state = await self._state(run_id) or {}
        spec = state.get("spec") or await self._spec(run_id)

        def when(ts: float | None) -> datetime | None:
            return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)

        return ScheduleInfo(
            id=spec["id"],
            workflow=spec["workflow"],
            cron=spec["cron"],
            tz=spec["tz"],
            args=list(spec["args"]),
            kwargs=dict(spec["kwargs"]),
            overlap=spec["overlap"],
            catch_up=spec["catch_up"],
            status=info.status.value,
            paused=info.status is RunStatus.PAUSED,
            next_at=when(state.get("next_at")),
            last_slot=when(state.get("last_slot")),
            last_run=state.get("last_run"),
            skipped=int(state.get("skipped", 0)),
            last_error=state.get("error"),
        )

    async def list(self) -> list[ScheduleInfo]:
        """Every schedule, by id."""
        found: list[ScheduleInfo] = []
        async for run in self.app.list_runs(workflow=SCHEDULER):
            if run.id.startswith(PREFIX):
                try:
                    found.append(await self.get(run.id[len(PREFIX) :]))
                except ScheduleNotFound:  # deleted meanwhile
                    continue
        return sorted(found, key=lambda s: s.id)

    async def pause(self, schedule_id: str) -> bool:
        """Stop firing slots until ``resume``. False if it was paused already."""
        await self.get(schedule_id)
        return await self.app.pause(PREFIX + schedule_id, "schedule paused")

    async def resume(self, schedule_id: str) -> bool:
        """Fire slots again; slots missed while paused follow the ``catch_up`` rule.
        False if it was not paused."""
        await self.get(schedule_id)
        return await self.app.resume(PREFIX + schedule_id, "schedule resumed")

    async def delete(self, schedule_id: str) -> None:
        """Remove the schedule. Runs it started are kept (they are not its children)."""
        await self.get(schedule_id)
        run_id = PREFIX + schedule_id
        await self.app.terminate(run_id, "schedule deleted")
        await self.app.delete(run_id)
        self.declared.pop(schedule_id, None)

    async def trigger(self, schedule_id: str, at: datetime | None = None) -> Handle[Any]:
        """Start a run now (or for the slot time ``at``), outside the cron; its id is
        ``<id>@<time>`` like a slot's, so triggering the same time twice starts one run."""
        schedule = await self.get(schedule_id)
        when = at.timestamp() if at is not None else float(round(self.app.clock.now()))
        spec = await self._spec(PREFIX + schedule.id)
        return self.app.handle(await start_slot(self.app, spec, when))

    async def backfill(
        self, schedule_id: str, start: datetime, end: datetime
    ) -> builtins.list[str]:
        """Start the run of every slot in ``[start, end]`` that has none (at most 1000
        slots). Returns the slots' run ids; a slot that already ran is not run again."""
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidSchedule("backfill times must be timezone-aware (e.g. UTC)")
        if end < start:
            raise InvalidSchedule("backfill end is before its start; swap them")
        schedule = await self.get(schedule_id)
        spec = await self._spec(PREFIX + schedule.id)
        slots = slots_between(spec["cron"], spec["tz"], start.timestamp(), end.timestamp())
        return [await start_slot(self.app, spec, slot) for slot in slots]


def parse_time(value: str) -> datetime:
    """An ISO-8601 time from a client (naive means UTC)."""
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSchedule(
            f"bad time {value!r}: use ISO-8601 such as 2026-01-31T09:00:00Z"
        ) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)
