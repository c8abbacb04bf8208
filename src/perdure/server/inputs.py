"""What a client sends, read strictly: query parameters and JSON bodies. Unknown or
repeated parameters, unknown fields, wrong types and oversized bodies are refused
with a 4xx that names the culprit, before anything is done."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..records import RunStatus
from .problems import ApiError, bad_request

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_BODY = 1 << 20  # bytes
MAX_DEPTH = 100  # nesting of arrays and objects in a body
MAX_TEXT = 200  # ids, names, keys, topics (what perdure stores in indexed columns)
MAX_REASON = 2000
STATUSES = tuple(s.value for s in RunStatus)


def check_text(value: Any, what: str, *, limit: int = MAX_TEXT) -> str:
    """A string a database can store: at most ``limit`` characters, no NUL."""
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a string, not {_kind(value)}")
    if len(value) > limit:
        raise bad_request(f"{what} is too long ({len(value)} characters; at most {limit})")
    if "\0" in value:
        raise bad_request(f"{what} must not contain NUL characters")
    return value


class Query:
    """A request's query parameters; ``allowed`` names every one it may have."""

    def __init__(self, items: Iterable[tuple[str, str]], allowed: Iterable[str]) -> None:
        permitted = set(allowed)
        self._values: dict[str, str] = {}
        for name, value in items:
            if name not in permitted:
                known = ", ".join(sorted(permitted)) or "none"
                raise bad_request(f"unknown query parameter {name!r} (this route takes: {known})")
            if name in self._values:
                raise bad_request(f"query parameter {name!r} is given twice; give it once")
            self._values[name] = value

    def text(self, name: str) -> str | None:
        value = self._values.get(name)
        if value == "":
            raise bad_request(f"query parameter {name!r} is empty; leave it out not to filter")
        return None if value is None else check_text(value, f"query parameter {name!r}")

    def status(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is not None and value not in STATUSES:
            raise bad_request(
                f"unknown status {_clip(value)!r}; use one of: {', '.join(STATUSES)}",
                "unknown_status",
            )
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._values.get(name)
        if value is None:
            return default
        try:
            number: int | None = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise bad_request(
                f"query parameter {name!r} must be a whole number from {low} to {high}, "
                f"not {_clip(value)!r}"
            )
        return number

    def time(self, name: str) -> datetime | None:
        value = self._values.get(name)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise bad_request(
                f"query parameter {name!r} is not an ISO-8601 time: {_clip(value)!r} (write "
                "e.g. 2026-01-31T12:00:00Z)"
            ) from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def read_raw(request: Request) -> bytes:
    """The request's body, as sent; 413 when it is larger than ``MAX_BODY``."""
    length = request.headers.get("content-length", "").strip()
    if length.isdecimal() and len(length) < 20 and int(length) > MAX_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    """The request's JSON body (None when it is empty). 413 over ``MAX_BODY``, 415
    for a body that is not ``application/json``, 400 for one that is not JSON."""
    raw = await read_raw(request)
    if not raw.strip():
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with the header 'Content-Type: application/json' "
            f"(got {media or 'no content type'!r})",
        )
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise bad_request(f"the body nests too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    _check_tree(data)
    return data


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY} bytes")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {_clip(text)} is too large")
    return value


def _check_tree(data: Any) -> None:
    """Every string UTF-8 can encode (no lone surrogates), and a bounded depth."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _encodable(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise bad_request(f"the body nests too deeply (at most {MAX_DEPTH} levels)")
            if isinstance(value, dict):
                for key in value:
                    _encodable(key)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(
            "the body holds a lone surrogate (\\ud800-\\udfff) that UTF-8 cannot encode"
        ) from None


class Body:
    """A JSON object body, read field by field; ``allowed`` names every field it may
    have. An empty body reads as ``{}``."""

    def __init__(self, data: Any, allowed: Iterable[str]) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise bad_request(f"the body must be a JSON object, not {_kind(data)}")
        permitted = set(allowed)
        unknown = sorted(set(data) - permitted)
        if unknown:
            known = ", ".join(sorted(permitted)) or "none"
            raise bad_request(f"unknown field {_clip(unknown[0])!r} (this route takes: {known})")
        self.data: Mapping[str, Any] = data

    def has(self, name: str) -> bool:
        return name in self.data

    def text(
        self, name: str, *, required: bool = False, nullable: bool = False, limit: int = MAX_TEXT
    ) -> str | None:
        if name not in self.data:
            if required:
                raise bad_request(f"field {name!r} is required")
            return None
        value = self.data[name]
        if value is None and (nullable or not required):
            return None
        return check_text(value, f"field {name!r}", limit=limit)

    def integer(self, name: str, low: int, high: int, *, required: bool = False) -> int | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise bad_request(f"field {name!r} is required (a whole number)")
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON does not tell 2 from 2.0
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise bad_request(
                f"field {name!r} must be a whole number from {low} to {high}, not "
                f"{_clip(json.dumps(value))}"
            )
        return value

    def seconds(self, name: str, high: float = 10 * 365 * 86400) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= high:
            raise bad_request(
                f"field {name!r} must be a number of seconds from 0 to {high:g}, not "
                f"{_clip(json.dumps(value))}"
            )
        return float(value)

    def array(self, name: str) -> list[Any]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise bad_request(f"field {name!r} must be an array, not {_kind(value)}")
        return value

    def object(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise bad_request(f"field {name!r} must be an object, not {_kind(value)}")
        return value

    def choice(self, name: str, options: Iterable[str]) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        choices = list(options)
        if value not in choices:
            raise bad_request(
                f"field {name!r} must be one of {', '.join(choices)}, not "
                f"{_clip(json.dumps(value))}"
            )
        return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
