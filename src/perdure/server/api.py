"""The routes of ``/api/v1``: each reads its input strictly, acts through the public
App API, and answers the JSON of the HTTP contract (``docs/api.md``)."""

from __future__ import annotations

from typing import Any

import perdure

from ..client import Handle
from ..errors import RunExists
from ..records import IdPolicy, RunStatus
from ..schedules import InvalidSchedule, parse_time
from . import views
from .inputs import MAX_REASON
from .problems import ApiError, bad_request
from .router import Answer, Call, Route

FILTERS = ("workflow", "key", "parent", "queue", "created_after", "created_before")
START_FIELDS = (
    "workflow",
    "args",
    "kwargs",
    "id",
    "id_policy",
    "key",
    "queue",
    "priority",
    "delay",
    "timeout",
    "dedup_key",
)
MAX_PRIORITY = 1_000_000
ACTIONS = ("cancel", "pause", "resume", "terminate", "retry")


# -- about the server ------------------------------------------------------------------


async def health(call: Call) -> Answer:
    return Answer(200, {"status": "ok", "version": perdure.__version__})


async def whoami(call: Call) -> Answer:
    return Answer(200, {"scope": call.scope, "auth": call.auth_enabled})


async def openapi(call: Call) -> Answer:
    from .openapi import document

    return Answer(200, document())


# -- definitions ---------------------------------------------------------------------


def _definitions(call: Call) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in call.app.definitions()}


def _definition(call: Call, name: str) -> dict[str, Any]:
    found = _definitions(call)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ApiError(
            404,
            "definition_not_found",
            f"no workflow, DAG or state machine named {name!r} (this app has: {known})",
        )
    return found[name]


async def list_definitions(call: Call) -> Answer:
    return Answer(200, {"definitions": call.app.definitions()})


async def get_definition(call: Call) -> Answer:
    name = call.param("name")
    definition = dict(_definition(call, name))
    if definition["kind"] != "workflow":
        definition["mermaid"] = call.app.workflows[name].definition.mermaid()
    return Answer(200, definition)


# -- runs ----------------------------------------------------------------------------


async def _detail(call: Call, run_id: str) -> dict[str, Any]:
    """The run object with its ``result`` and ``input``."""
    out = views.run(await call.app.get_run(run_id))
    given, result = await call.app.run_data(run_id)
    out["result"] = result
    out["input"] = given if isinstance(given, dict) else None
    return out


def _filters(call: Call) -> dict[str, Any]:
    q = call.query
    return {
        "workflow": q.text("workflow"),
        "key": q.text("key"),
        "parent": q.text("parent"),
        "queue": q.text("queue"),
        "created_after": q.time("created_after"),
        "created_before": q.time("created_before"),
    }


async def list_runs(call: Call) -> Answer:
    q = call.query
    runs, cursor = await call.app.list_runs_page(
        **_filters(call),
        status=q.status("status"),
        limit=q.integer("limit", 50, 1, 500),
        cursor=q.text("cursor"),
    )
    return Answer(200, {"runs": [views.run(r) for r in runs], "next_cursor": cursor})


async def count_runs(call: Call) -> Answer:
    return Answer(200, {"counts": await call.app.count_runs(**_filters(call))})


async def start_run(call: Call) -> Answer:
    b = await call.body(START_FIELDS)
    name = b.text("workflow", required=True)
    assert name is not None
    args, kwargs = b.array("args"), b.object("kwargs")
    run_id = b.text("id")
    policy = b.choice("id_policy", [p.value for p in IdPolicy]) or IdPolicy.USE_EXISTING.value
    key = b.text("key")
    options: dict[str, Any] = {
        "id": run_id,
        "key": key,
        "queue": b.text("queue"),
        "priority": b.integer("priority", -MAX_PRIORITY, MAX_PRIORITY) or 0,
        "delay": b.seconds("delay"),
        "timeout": b.seconds("timeout"),
        "dedup_key": b.text("dedup_key"),
    }
    if options["timeout"] is not None and options["timeout"] <= 0:
        raise bad_request("field 'timeout' must be a positive number of seconds")
    definition = _definition(call, name)
    app = call.app
    if definition["kind"] == "state_machine":
        extra = [f for f in b.data if f not in ("workflow", "args", "kwargs", "id", "key")]
        return await _trigger(call, name, args, kwargs, run_id, key, extra)
    app.check_call(name, args, kwargs)
    created = True
    handle: Handle[Any]
    if run_id is not None and policy != IdPolicy.REJECT.value:
        try:
            # Refused when the id is taken: that tells a new run from an existing one.
            handle = await app.start(name, *args, id_policy="reject", **options, **kwargs)
        except RunExists as exc:
            if policy == IdPolicy.USE_EXISTING.value:
                handle, created = app.handle(run_id), False
            else:
                handle = await app.start(name, *args, id_policy=policy, **options, **kwargs)
                created = IdPolicy(policy).replaces(RunStatus(exc.status))
    else:
        handle = await app.start(name, *args, id_policy=policy, **options, **kwargs)
    return Answer(201 if created else 200, await _detail(call, handle.id))


async def _trigger(
    call: Call,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    run_id: str | None,
    key: str | None,
    extra: list[str],
) -> Answer:
    """A state machine starts through its ``trigger``: a key and a record."""
    usage = (
        f"{name!r} is a state machine: start it with "
        '{"workflow": NAME, "key": KEY, "kwargs": {"record": RECORD}, "id"?: ID}'
    )
    if extra or len(args) > 1 or set(kwargs) - {"record"} or (args and kwargs):
        raise bad_request(usage)
    if key is None:
        raise bad_request(f"field 'key' is required: {usage}")
    record = kwargs.get("record", args[0] if args else None)
    machine = call.app.workflows[name].definition
    handle = await machine.trigger(key, record, id=run_id)  # checks the record
    return Answer(201, await _detail(call, handle.id))


async def get_run(call: Call) -> Answer:
    return Answer(200, await _detail(call, call.param("id")))


async def journal(call: Call) -> Answer:
    entries = await call.app.handle(call.param("id")).journal()
    return Answer(200, {"entries": [views.journal_entry(call.app, e) for e in entries]})


async def steps(call: Call) -> Answer:
    records = await call.app.handle(call.param("id")).steps()
    return Answer(200, {"steps": [views.step(s) for s in records]})


async def logs(call: Call) -> Answer:
    lines = await call.app.handle(call.param("id")).logs()
    return Answer(200, {"logs": [views.log(line) for line in lines]})


async def children(call: Call) -> Answer:
    run_id = call.param("id")
    await call.app.get_run(run_id)  # an unknown run is a 404, not an empty list
    found = [views.run(info) async for info in call.app.list_runs(parent=run_id)]
    return Answer(200, {"runs": found})


async def event(call: Call) -> Answer:
    run_id, key = call.param("id"), call.param("key")
    value = await call.app.handle(run_id).get_event(key)
    if value is None:
        raise ApiError(
            404,
            "event_not_found",
            f"run {run_id!r} has not set an event {key!r} (or set it to null)",
        )
    return Answer(200, {"key": key, "value": value})


async def send(call: Call) -> Answer:
    b = await call.body(("topic", "message", "key"))
    if not b.has("topic"):
        raise bad_request('field "topic" is required (a string, or null): {"topic": T, ...}')
    topic = b.text("topic", nullable=True)
    key = b.text("key")
    handle = call.app.handle(call.param("id"))
    await handle.info()  # a message to an unknown run is a 404
    accepted = await handle.send(topic, b.data.get("message"), key=key)
    return Answer(202, {"accepted": accepted})


def _action(name: str) -> Any:
    async def act(call: Call) -> Answer:
        b = await call.body(("reason",))
        reason = b.text("reason", limit=MAX_REASON) or ""
        run_id = call.param("id")
        app = call.app
        if name == "cancel":
            changed = await app.handle(run_id).cancel(reason or "cancelled by request")
        elif name == "retry":
            await app.retry(run_id, reason, by=call.actor)
            changed = True
        else:
            changed = bool(await getattr(app, name)(run_id, reason, by=call.actor))
        return Answer(200, {"changed": changed, "run": views.run(await app.get_run(run_id))})

    act.__name__ = f"{name}_run"
    return act


async def fork(call: Call) -> Answer:
    b = await call.body(("from_step", "id"))
    from_step = b.integer("from_step", 0, 1_000_000_000, required=True)
    assert from_step is not None
    handle = await call.app.fork(call.param("id"), from_step, id=b.text("id"), by=call.actor)
    return Answer(201, await _detail(call, handle.id))


async def delete(call: Call) -> Answer:
    await call.app.delete(call.param("id"))
    return Answer(200, {"deleted": True})


# -- workers and queues --------------------------------------------------------------


async def workers(call: Call) -> Answer:
    return Answer(200, {"workers": [views.worker(w) for w in await call.app.workers()]})


async def queues(call: Call) -> Answer:
    found = [
        views.queue(declared, await call.app.count_runs(queue=declared.name))
        for declared in call.app.queues
    ]
    return Answer(200, {"queues": found})


# -- schedules -----------------------------------------------------------------------

SCHEDULE_FIELDS = ("id", "workflow", "cron", "args", "kwargs", "tz", "overlap", "catch_up")


async def list_schedules(call: Call) -> Answer:
    return Answer(200, {"schedules": [s.to_json() for s in await call.app.schedules.list()]})


async def create_schedule(call: Call) -> Answer:
    b = await call.body(SCHEDULE_FIELDS)
    workflow = b.text("workflow", required=True)
    cron = b.text("cron", required=True)
    assert workflow is not None and cron is not None
    names = {d["name"] for d in call.app.definitions() if d["kind"] == "workflow"}
    if workflow not in names:
        known = ", ".join(sorted(names)) or "none"
        raise bad_request(f"no workflow named {workflow!r} to schedule (this app has: {known})")
    made = await call.app.schedules.create(
        workflow,
        cron=cron,
        id=b.text("id"),
        args=b.array("args"),
        kwargs=b.object("kwargs"),
        tz=b.text("tz") or "UTC",
        overlap=b.choice("overlap", ("allow", "skip")) or "allow",
        catch_up=b.integer("catch_up", 0, 1000) or 0,
    )
    return Answer(201, made.to_json())


async def get_schedule(call: Call) -> Answer:
    return Answer(200, (await call.app.schedules.get(call.param("schedule"))).to_json())


async def delete_schedule(call: Call) -> Answer:
    await call.app.schedules.delete(call.param("schedule"))
    return Answer(200, {"deleted": True})


def _schedule_action(name: str) -> Any:
    async def act(call: Call) -> Answer:
        await call.body(())
        schedule_id = call.param("schedule")
        changed = await getattr(call.app.schedules, name)(schedule_id)
        found = await call.app.schedules.get(schedule_id)
        return Answer(200, {"changed": changed, "schedule": found.to_json()})

    act.__name__ = f"{name}_schedule"
    return act


def _time(b: Any, name: str, *, required: bool = False) -> Any:
    text = b.text(name, required=required)
    try:
        return None if text is None else parse_time(text)
    except InvalidSchedule as exc:
        raise bad_request(f"field {name!r}: {exc}") from None


async def trigger_schedule(call: Call) -> Answer:
    b = await call.body(("at",))
    handle = await call.app.schedules.trigger(call.param("schedule"), _time(b, "at"))
    return Answer(201, await _detail(call, handle.id))


async def backfill_schedule(call: Call) -> Answer:
    b = await call.body(("start", "end"))
    started = await call.app.schedules.backfill(
        call.param("schedule"), _time(b, "start", required=True), _time(b, "end", required=True)
    )
    return Answer(200, {"runs": started})


RUN = "/runs/{id}"
SCHEDULE = "/schedules/{schedule}"

ROUTES: list[Route] = [
    Route("GET", "/health", health, public=True),
    Route("GET", "/openapi.json", openapi, public=True),
    Route("GET", "/whoami", whoami),
    Route("GET", "/definitions", list_definitions),
    Route("GET", "/definitions/{name}", get_definition),
    Route("POST", "/runs", start_run),
    Route("GET", "/runs", list_runs, query=(*FILTERS, "status", "limit", "cursor")),
    Route("GET", "/runs/counts", count_runs, query=FILTERS),
    Route("GET", RUN, get_run),
    Route("DELETE", RUN, delete),
    Route("GET", f"{RUN}/journal", journal),
    Route("GET", f"{RUN}/steps", steps),
    Route("GET", f"{RUN}/logs", logs),
    Route("GET", f"{RUN}/children", children),
    Route("GET", f"{RUN}/events/{{key}}", event),
    Route("POST", f"{RUN}/messages", send),
    *(Route("POST", f"{RUN}/{name}", _action(name)) for name in ACTIONS),
    Route("POST", f"{RUN}/fork", fork),
    Route("GET", "/workers", workers),
    Route("GET", "/queues", queues),
    Route("GET", "/schedules", list_schedules),
    Route("POST", "/schedules", create_schedule),
    Route("GET", SCHEDULE, get_schedule),
    Route("DELETE", SCHEDULE, delete_schedule),
    *(Route("POST", f"{SCHEDULE}/{name}", _schedule_action(name)) for name in ("pause", "resume")),
    Route("POST", f"{SCHEDULE}/trigger", trigger_schedule),
    Route("POST", f"{SCHEDULE}/backfill", backfill_schedule),
]
