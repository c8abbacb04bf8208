"""What goes wrong, as the API says it: ``{"error": {"code", "message"}}`` with the
HTTP status that fits. perdure's errors map to statuses here, in one table, so every
route answers a given failure the same way."""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import (
    ConfigurationError,
    DagError,
    InvalidArguments,
    MachineRunActive,
    RegistrationError,
    RunConflict,
    RunDeduplicated,
    RunExists,
    RunNotFound,
    RunStateError,
    SerializationError,
)
from ..schedules import ScheduleExists, ScheduleNotFound
from ..webhooks import WebhookInvalid, WebhookRejected


class ApiError(Exception):
    """An answer other than success: the status, a snake_case code, and a message that
    says what happened and what to do. ``headers`` go with the answer."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def from_exception(exc: BaseException) -> ApiError | None:
    """The answer for an error perdure raised on a client's behalf, or None for one
    that is the server's own fault (answered 500 and logged)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ScheduleNotFound):
        return ApiError(404, "schedule_not_found", str(exc))
    if isinstance(exc, ScheduleExists):  # before RunExists: it is one
        return ApiError(409, "schedule_exists", str(exc))
    if isinstance(exc, RunNotFound):
        return ApiError(404, "run_not_found", str(exc))
    if isinstance(exc, RunStateError):
        if exc.status == "taken":  # a fork's id belongs to a run already
            return ApiError(409, "run_exists", str(exc))
        return ApiError(409, "run_state", str(exc))
    if isinstance(exc, RunExists):
        return ApiError(409, "run_exists", str(exc))
    if isinstance(exc, RunConflict):
        return ApiError(409, "run_conflict", str(exc))
    if isinstance(exc, (RunDeduplicated, MachineRunActive)):
        return ApiError(409, "deduplicated", str(exc))
    if isinstance(exc, (SerializationError, InvalidArguments)):
        return ApiError(400, "invalid_arguments", str(exc))
    if isinstance(exc, WebhookRejected):
        return ApiError(401, "bad_signature", str(exc))
    if isinstance(exc, WebhookInvalid):
        return ApiError(400, "bad_request", str(exc))
    if isinstance(exc, (DagError, ConfigurationError)):
        return None  # the app's own definitions are wrong: the server's fault
    if isinstance(exc, (RegistrationError, ValueError)):
        # An undeclared queue, a key too long, a malformed cursor: what was asked for.
        return ApiError(400, "bad_request", str(exc))
    return None


def body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def dumps(data: Any) -> bytes:
    """JSON bytes of an answer. Values a run stored may hold floats JSON cannot say
    (NaN, infinities): they become null rather than invalid JSON."""
    try:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(data), allow_nan=False, separators=(",", ":"))
    return text.encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
