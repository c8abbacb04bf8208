"""The API's OpenAPI 3.1 document, served at ``/api/v1/openapi.json`` and checked in
as ``docs/openapi.json``. Regenerate the file after changing the API with::

    python -m perdure.server.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import perdure

from ..records import EntryKind, IdPolicy, RunStatus
from .inputs import MAX_BODY, MAX_REASON, MAX_TEXT

Schema = dict[str, Any]

STATUSES = [s.value for s in RunStatus]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """A closed object: only these properties; ``required`` defaults to all of them."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
TIME: Schema = {"type": "string", "format": "date-time"}
INT: Schema = {"type": "integer"}
ANY: Schema = {}
ERROR_INFO = obj(
    {"type": {"type": "string"}, "message": {"type": "string"}, "traceback": {"type": "string"}},
    ["type", "message"],
)

RUN_PROPERTIES: dict[str, Schema] = {
    "id": {"type": "string"},
    "workflow": {"type": "string"},
    "status": {"type": "string", "enum": STATUSES},
    "created_at": TIME,
    "started_at": nullable(TIME),
    "finished_at": nullable(TIME),
    "parent_id": {"type": ["string", "null"]},
    "key": {"type": ["string", "null"]},
    "queue": {"type": "string"},
    "priority": INT,
    "recoveries": INT,
    "generation": INT,
    "journal_len": INT,
    "version": {"type": ["string", "null"]},
    "waiting_for": {"type": ["string", "null"]},
    "error": nullable(ref("ErrorInfo")),
}

LOG_LINE = obj(
    {
        "at": TIME,
        "level": {"type": "string"},
        "message": {"type": "string"},
        "position": INT,
        "step": {"type": ["string", "null"]},
        "attempt": INT,
    },
    ["at", "level", "message"],
)

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string", "description": "snake_case, e.g. run_not_found"},
                    "message": {"type": "string", "description": "what happened, what to do"},
                }
            )
        }
    ),
    "ErrorInfo": ERROR_INFO,
    "Run": obj(RUN_PROPERTIES),
    "RunDetail": obj(
        {
            **RUN_PROPERTIES,
            "result": {"description": "the run's result as JSON; null unless completed"},
            "input": {
                "description": 'its arguments, {"args": [...], "kwargs": {...}}; null if '
                "the server cannot read them",
                "anyOf": [
                    obj({"args": {"type": "array"}, "kwargs": {"type": "object"}}),
                    {"type": "null"},
                ],
            },
        }
    ),
    "RunList": obj(
        {
            "runs": {"type": "array", "items": ref("Run")},
            "next_cursor": {"type": ["string", "null"]},
        }
    ),
    "Children": obj({"runs": {"type": "array", "items": ref("Run")}}),
    "Counts": obj(
        {"counts": obj({status: {"type": "integer", "minimum": 0} for status in STATUSES})}
    ),
    "Definition": {
        "type": "object",
        "description": "app.definitions(): a workflow (name, queue, timeout, parameters), a "
        "DAG (tasks, edges, inputs, sinks) or a state machine (statuses, transitions...)",
        "properties": {
            "kind": {"type": "string", "enum": ["workflow", "dag", "state_machine"]},
            "name": {"type": "string"},
            "mermaid": {"type": "string", "description": "single gets of DAGs and machines"},
        },
        "required": ["kind", "name"],
    },
    "Definitions": obj({"definitions": {"type": "array", "items": ref("Definition")}}),
    "StartRequest": obj(
        {
            "workflow": {**TEXT, "description": "a name from GET /api/v1/definitions"},
            "args": {"type": "array", "description": "positional arguments (JSON)"},
            "kwargs": {"type": "object", "description": "keyword arguments (JSON)"},
            "id": {**TEXT, "description": "the run's id (default: random); see id_policy"},
            "id_policy": {"type": "string", "enum": [p.value for p in IdPolicy]},
            "key": {**TEXT, "description": "business key (required for a state machine)"},
            "queue": TEXT,
            "priority": {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000},
            "delay": {"type": "number", "minimum": 0, "maximum": 315_360_000},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 315_360_000},
            "dedup_key": TEXT,
        },
        ["workflow"],
    ),
    "JournalEntry": obj(
        {
            "seq": INT,
            "kind": {"type": "string", "enum": [k.value for k in EntryKind]},
            "at": TIME,
            "position": INT,
            "name": {"type": "string"},
            "attempt": INT,
            "failed": {"type": "boolean"},
            "value": {"description": "what it recorded (a step's result, a message...)"},
            "error": ref("ErrorInfo"),
            "detail": {"description": "an operator's action (by, reason) or a log line"},
        },
        ["seq", "kind", "at", "attempt", "failed"],
    ),
    "Journal": obj({"entries": {"type": "array", "items": ref("JournalEntry")}}),
    "LogLine": LOG_LINE,
    "Logs": obj({"logs": {"type": "array", "items": ref("LogLine")}}),
    "Attempt": obj(
        {
            "attempt": INT,
            "started_at": nullable(TIME),
            "finished_at": TIME,
            "duration_ms": {"type": ["integer", "null"]},
            "error": nullable(ref("ErrorInfo")),
            "logs": {"type": "array", "items": ref("LogLine")},
        }
    ),
    "Step": obj(
        {
            "position": INT,
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["completed", "failed", "retrying"]},
            "attempts": {"type": "integer", "description": "how many attempts it made"},
            "started_at": nullable(TIME),
            "finished_at": nullable(TIME),
            "duration_ms": {"type": ["integer", "null"]},
            "input": {"description": 'its arguments, {"args", "kwargs"}, or null'},
            "output": {"description": "its result as JSON (null unless completed)"},
            "error": nullable(ref("ErrorInfo")),
            "attempt_details": {"type": "array", "items": ref("Attempt")},
        }
    ),
    "Steps": obj({"steps": {"type": "array", "items": ref("Step")}}),
    "Event": obj({"key": {"type": "string"}, "value": ANY}),
    "MessageRequest": obj(
        {
            "topic": {"type": ["string", "null"], "maxLength": MAX_TEXT},
            "message": {"description": "any JSON (default null)"},
            "key": {**TEXT, "description": "a second send with this key is ignored"},
        },
        ["topic"],
    ),
    "Accepted": obj({"accepted": {"type": "boolean"}}),
    "ActionRequest": obj({"reason": {"type": "string", "maxLength": MAX_REASON}}, []),
    "ActionResult": obj({"changed": {"type": "boolean"}, "run": ref("Run")}),
    "ForkRequest": obj(
        {
            "from_step": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
            "id": TEXT,
        },
        ["from_step"],
    ),
    "Deleted": obj({"deleted": {"type": "boolean", "const": True}}),
    "Worker": obj(
        {
            "id": {"type": "string"},
            "host": {"type": "string"},
            "pid": INT,
            "version": {"type": ["string", "null"]},
            "workflows": {"type": "array", "items": {"type": "string"}},
            "queues": {"type": ["array", "null"], "items": {"type": "string"}},
            "concurrency": INT,
            "held": INT,
            "started_at": TIME,
            "seen_at": TIME,
        }
    ),
    "Workers": obj({"workers": {"type": "array", "items": ref("Worker")}}),
    "Queue": obj(
        {
            "name": {"type": "string"},
            "concurrency": INT,
            "per_worker": INT,
            "per_key": INT,
            "rate": obj({"limit": INT, "per": {"type": "number"}}),
            "counts": {"type": "object", "additionalProperties": INT},
        },
        ["name", "counts"],
    ),
    "Queues": obj({"queues": {"type": "array", "items": ref("Queue")}}),
    "Schedule": obj(
        {
            "id": {"type": "string"},
            "workflow": {"type": "string"},
            "cron": {"type": "string", "description": "5-field cron, @hourly..., @every 10m"},
            "tz": {"type": "string"},
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "overlap": {"type": "string", "enum": ["allow", "skip"]},
            "catch_up": INT,
            "status": {"type": "string", "enum": STATUSES},
            "paused": {"type": "boolean"},
            "next_at": nullable(TIME),
            "last_slot": nullable(TIME),
            "last_run": {"type": ["string", "null"]},
            "skipped": INT,
            "last_error": {
                "type": ["string", "null"],
                "description": "why the last slot that could not start did not",
            },
        }
    ),
    "Schedules": obj({"schedules": {"type": "array", "items": ref("Schedule")}}),
    "ScheduleRequest": obj(
        {
            "workflow": {**TEXT, "description": "a workflow's name"},
            "cron": {
                **TEXT,
                "description": "'*/5 * * * *', '0 9 * * mon-fri', '@hourly', '@every 10m'",
            },
            "id": {**TEXT, "description": "the schedule's id (default: the workflow's name)"},
            "args": {"type": "array", "description": "positional arguments (JSON)"},
            "kwargs": {"type": "object", "description": "keyword arguments (JSON)"},
            "tz": {**TEXT, "description": "IANA time zone (default UTC)"},
            "overlap": {"type": "string", "enum": ["allow", "skip"]},
            "catch_up": {"type": "integer", "minimum": 0, "maximum": 1000},
        },
        ["workflow", "cron"],
    ),
    "ScheduleActionResult": obj({"changed": {"type": "boolean"}, "schedule": ref("Schedule")}),
    "TriggerRequest": obj({"at": {**TIME, "description": "the slot time (default: now)"}}, []),
    "BackfillRequest": obj({"start": TIME, "end": TIME}),
    "Backfilled": obj(
        {"runs": {"type": "array", "items": {"type": "string"}, "description": "slot run ids"}}
    ),
    "Health": obj({"status": {"const": "ok"}, "version": {"type": "string"}}),
    "Whoami": obj(
        {"scope": {"type": "string", "enum": ["read", "admin"]}, "auth": {"type": "boolean"}}
    ),
    "HookOutcome": obj(
        {
            "handled": {"type": "boolean"},
            "message": {"type": "string"},
            "action": {"type": "string", "enum": ["start", "send"]},
            "run_id": {"type": "string"},
            "created": {"type": "boolean"},
            "accepted": {"type": "boolean"},
        },
        ["handled", "message"],
    ),
}

_WHY = {
    400: "bad input: the message says which parameter or field",
    401: "no token, or not one of the server's",
    403: "a read-only token asked for a change",
    404: "no such run, definition, event or schedule",
    409: "a conflict: the run's status does not allow it, or the id is taken",
    413: f"the body is larger than {MAX_BODY} bytes",
    415: "the body is not application/json",
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for code in codes:
        answer = _json(ref("Error"), _WHY[code])
        if code == 401:
            answer["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        out[str(code)] = answer
    return out


def _path(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


RUN_ID = _path("id", "the run's id (percent-encode it: it may hold any character)")
FILTERS = [
    _query("workflow", TEXT, "runs of this workflow"),
    _query("key", TEXT, "runs with this business key"),
    _query("parent", TEXT, "children of this run"),
    _query("queue", TEXT, "runs on this queue"),
    _query("created_after", TIME, "created at or after this time (ISO-8601)"),
    _query("created_before", TIME, "created before this time (ISO-8601)"),
]


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Schema],
    errors: tuple[int, ...],
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    body_required: bool = True,
    public: bool = False,
) -> Schema:
    out: Schema = {"operationId": op_id, "summary": summary}
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    out["responses"] = {**ok, **_errors(*errors)}
    if public:
        out["security"] = []
    return out


READ = (401,)
RUN_READ = (401, 404)
WRITE = (400, 401, 403, 404, 409, 413, 415)


def _action(name: str, summary: str) -> Schema:
    return {
        "post": _op(
            f"{name}_run",
            summary,
            {"200": _json(ref("ActionResult"), "done (changed: false when nothing was to do)")},
            WRITE,
            params=[RUN_ID],
            body=ref("ActionRequest"),
            body_required=False,
        )
    }


SCHEDULE_ID = _path("schedule", "the schedule's id (percent-encode it)")


def _schedule_action(name: str, summary: str) -> Schema:
    return {
        "post": _op(
            f"{name}_schedule",
            summary,
            {"200": _json(ref("ScheduleActionResult"), "done (changed: false: nothing to do)")},
            WRITE,
            params=[SCHEDULE_ID],
            body=obj({}, []),
            body_required=False,
        )
    }


def _schedule_paths(api: str) -> dict[str, Schema]:
    one = f"{api}/schedules/{{schedule}}"
    return {
        f"{api}/schedules": {
            "get": _op(
                "list_schedules",
                "The schedules, by id",
                {"200": _json(ref("Schedules"), "schedules")},
                READ,
            ),
            "post": _op(
                "create_schedule",
                "Create a schedule (nothing is stored if the spec is wrong)",
                {"201": _json(ref("Schedule"), "created")},
                WRITE,
                body=ref("ScheduleRequest"),
            ),
        },
        one: {
            "get": _op(
                "get_schedule",
                "One schedule",
                {"200": _json(ref("Schedule"), "the schedule")},
                RUN_READ,
                params=[SCHEDULE_ID],
            ),
            "delete": _op(
                "delete_schedule",
                "Delete a schedule (the runs it started are kept)",
                {"200": _json(ref("Deleted"), "deleted")},
                (401, 403, 404),
                params=[SCHEDULE_ID],
            ),
        },
        f"{one}/pause": _schedule_action("pause", "Stop firing slots until resumed"),
        f"{one}/resume": _schedule_action("resume", "Fire slots again"),
        f"{one}/trigger": {
            "post": _op(
                "trigger_schedule",
                "Start the schedule's workflow now (or for the slot time 'at')",
                {"201": _json(ref("RunDetail"), "the run (the same one for the same time)")},
                WRITE,
                params=[SCHEDULE_ID],
                body=ref("TriggerRequest"),
                body_required=False,
            )
        },
        f"{one}/backfill": {
            "post": _op(
                "backfill_schedule",
                "Start the run of every slot in [start, end] that has none (at most 1000)",
                {"200": _json(ref("Backfilled"), "the slots' run ids")},
                WRITE,
                params=[SCHEDULE_ID],
                body=ref("BackfillRequest"),
            )
        },
    }


def _paths() -> dict[str, Schema]:
    api = "/api/v1"
    run = f"{api}/runs/{{id}}"
    return {
        f"{api}/health": {
            "get": _op(
                "health", "Is the server up", {"200": _json(ref("Health"), "up")}, (), public=True
            )
        },
        f"{api}/whoami": {
            "get": _op("whoami", "The token's scope", {"200": _json(ref("Whoami"), "scope")}, READ)
        },
        f"{api}/openapi.json": {
            "get": _op(
                "openapi",
                "This document",
                {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                (),
                public=True,
            )
        },
        f"{api}/definitions": {
            "get": _op(
                "list_definitions",
                "The workflows, DAGs and state machines the app can run",
                {"200": _json(ref("Definitions"), "definitions")},
                READ,
            )
        },
        f"{api}/definitions/{{name}}": {
            "get": _op(
                "get_definition",
                "One definition; DAGs and state machines with their Mermaid graph",
                {"200": _json(ref("Definition"), "the definition")},
                RUN_READ,
                params=[_path("name", "a definition's name")],
            )
        },
        f"{api}/runs": {
            "get": _op(
                "list_runs",
                "Runs, newest first, one page at a time",
                {"200": _json(ref("RunList"), "a page; pass next_cursor back for the next")},
                (400, 401),
                params=[
                    *FILTERS,
                    _query("status", {"type": "string", "enum": STATUSES}, "runs in this status"),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (50)"
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "minLength": 1},
                        "next_cursor of the previous page",
                    ),
                ],
            ),
            "post": _op(
                "start_run",
                "Start a run",
                {
                    "201": _json(ref("RunDetail"), "started"),
                    "200": _json(ref("RunDetail"), "the id was taken: that run (use_existing)"),
                },
                WRITE,
                body=ref("StartRequest"),
            ),
        },
        f"{api}/runs/counts": {
            "get": _op(
                "count_runs",
                "How many runs match, by status",
                {"200": _json(ref("Counts"), "counts")},
                (400, 401),
                params=FILTERS,
            )
        },
        run: {
            "get": _op(
                "get_run",
                "A run, with its result and input",
                {"200": _json(ref("RunDetail"), "the run")},
                RUN_READ,
                params=[RUN_ID],
            ),
            "delete": _op(
                "delete_run",
                "Delete an ended run and its journal",
                {"200": _json(ref("Deleted"), "deleted")},
                (401, 403, 404, 409),
                params=[RUN_ID],
            ),
        },
        f"{run}/journal": {
            "get": _op(
                "run_journal",
                "What the run recorded, in order",
                {"200": _json(ref("Journal"), "its journal")},
                RUN_READ,
                params=[RUN_ID],
            )
        },
        f"{run}/steps": {
            "get": _op(
                "run_steps",
                "The run's steps with their attempts",
                {"200": _json(ref("Steps"), "its steps")},
                RUN_READ,
                params=[RUN_ID],
            )
        },
        f"{run}/logs": {
            "get": _op(
                "run_logs",
                "What the run logged through perdure.logger",
                {"200": _json(ref("Logs"), "its log lines")},
                RUN_READ,
                params=[RUN_ID],
            )
        },
        f"{run}/children": {
            "get": _op(
                "run_children",
                "The runs it started",
                {"200": _json(ref("Children"), "its children")},
                RUN_READ,
                params=[RUN_ID],
            )
        },
        f"{run}/events/{{key}}": {
            "get": _op(
                "run_event",
                "The last value the run set for an event key",
                {"200": _json(ref("Event"), "the value")},
                RUN_READ,
                params=[RUN_ID, _path("key", "the event's key")],
            )
        },
        f"{run}/messages": {
            "post": _op(
                "send_message",
                "Send the run a message (perdure.receive(topic) gets it)",
                {"202": _json(ref("Accepted"), "accepted: false when its key was sent before")},
                WRITE,
                params=[RUN_ID],
                body=ref("MessageRequest"),
            )
        },
        f"{run}/cancel": _action("cancel", "Cancel the run (its cleanup code runs)"),
        f"{run}/pause": _action("pause", "Pause the run: it starts nothing new"),
        f"{run}/resume": _action("resume", "Resume a paused, cancelled or terminated run"),
        f"{run}/terminate": _action("terminate", "End the run now, without its cleanup"),
        f"{run}/retry": _action("retry", "Retry an ended run from the step that ended it"),
        f"{run}/fork": {
            "post": _op(
                "fork_run",
                "Start a new run reusing this run's steps before a position",
                {"201": _json(ref("RunDetail"), "the new run")},
                WRITE,
                params=[RUN_ID],
                body=ref("ForkRequest"),
            )
        },
        f"{api}/workers": {
            "get": _op(
                "list_workers",
                "The workers alive on the database",
                {"200": _json(ref("Workers"), "workers")},
                READ,
            )
        },
        f"{api}/queues": {
            "get": _op(
                "list_queues",
                "The app's queues, their limits and their runs by status",
                {"200": _json(ref("Queues"), "queues")},
                READ,
            )
        },
        **_schedule_paths(api),
        "/hooks/{name}": {
            "post": {
                "operationId": "webhook",
                "summary": "A webhook trigger (authenticated by the hook, e.g. a signature)",
                "security": [],
                "parameters": [_path("name", "the name given to app.webhook")],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": ANY}},
                },
                "responses": {
                    "201": _json(ref("HookOutcome"), "a run was started"),
                    "200": _json(ref("HookOutcome"), "no parser matched, or the run existed"),
                    "202": _json(ref("HookOutcome"), "a message was sent"),
                    "400": _json(ref("Error"), "a parser could not read the request"),
                    "401": _json(ref("Error"), "a parser refused its signature"),
                    "404": _json(ref("Error"), "no such hook, or no such run for a message"),
                    "409": _json(ref("Error"), "the run id belongs to another workflow"),
                    "413": _json(ref("Error"), _WHY[413]),
                },
            }
        },
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API (the same for every app)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "perdure",
            "version": perdure.__version__,
            "description": "Durable workflows over HTTP: start, list, inspect and operate "
            'runs. Every error is {"error": {"code", "message"}}. See docs/api.md.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token of the server, scope read (GET) or admin",
                }
            },
        },
    }


def render() -> str:
    """The document as ``docs/openapi.json`` holds it."""
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
