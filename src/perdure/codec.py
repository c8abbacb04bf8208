"""Payloads: values become JSON bytes, and come back as the type the code declares.

JSON is the format (never pickle): dataclasses, pydantic models, datetimes, UUIDs,
enums, bytes (as base64), sets and tuples are encoded; on the way back a type hint
(a step's or workflow's return annotation, a parameter's annotation) turns the JSON
into that type again. A :class:`Codec` can transform the JSON bytes (encrypt,
compress) before they are stored.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

import pydantic
import pydantic_core

from .errors import InvalidArguments, SerializationError


class Codec(Protocol):
    """A reversible transformation of stored payload bytes (e.g. encryption)."""

    def encode(self, data: bytes) -> bytes: ...

    def decode(self, data: bytes) -> bytes: ...


class PlainCodec:
    """Stores JSON as it is."""

    def encode(self, data: bytes) -> bytes:
        return data

    def decode(self, data: bytes) -> bytes:
        return data


_CONFIG = pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


@lru_cache(maxsize=1024)
def _adapter(hint: Any) -> pydantic.TypeAdapter[Any]:
    # Wrapped in a 1-tuple so that dataclasses nested in it inherit the base64 setting
    # for bytes (a TypeAdapter refuses a config for a bare dataclass or model).
    return pydantic.TypeAdapter(tuple[hint], config=_CONFIG)


def to_json(value: Any) -> bytes:
    """Encode ``value`` as JSON bytes, or raise :class:`SerializationError`."""
    try:
        return pydantic_core.to_json(value, bytes_mode="base64", serialize_unknown=False)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        hint = ""
        if "utf-8" in str(exc):
            hint = (
                " (a pydantic model holding binary bytes needs model_config = "
                "ConfigDict(ser_json_bytes='base64', val_json_bytes='base64'))"
            )
        raise SerializationError(
            f"cannot encode {type(value).__name__} as JSON ({exc}); use JSON-compatible "
            f"values, dataclasses or pydantic models{hint}"
        ) from None


def from_json(data: bytes, hint: Any = Any) -> Any:
    """Decode JSON bytes, converting to ``hint`` when one is given."""
    if hint is Any or hint is None or hint is inspect.Parameter.empty:
        return pydantic_core.from_json(data)
    try:
        return _adapter(hint).validate_json(b"[" + data + b"]")[0]
    except (pydantic.ValidationError, TypeError) as exc:
        raise SerializationError(f"stored value does not fit {hint!r}: {exc}") from None
    except pydantic.PydanticSchemaGenerationError:
        return pydantic_core.from_json(data)


class Payloads:
    """The app's encoder: JSON plus the configured :class:`Codec`."""

    def __init__(self, codec: Codec | None = None) -> None:
        self.codec: Codec = codec or PlainCodec()

    def encode(self, value: Any) -> bytes:
        return self.codec.encode(to_json(value))

    def decode(self, data: bytes | None, hint: Any = Any) -> Any:
        if data is None:
            return None
        return from_json(self.codec.decode(data), hint)

    def encode_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bytes:
        """Encode a call's arguments after checking they fit ``fn``'s signature."""
        try:
            bound = _signature(fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"bad arguments for {fn.__name__}: {exc}") from None
        try:
            return self.encode({"args": list(args), "kwargs": kwargs})
        except SerializationError:
            for name, value in bound.arguments.items():  # name the culprit
                try:
                    to_json(value)
                except SerializationError as exc:
                    raise SerializationError(f"argument {name!r} of {fn.__name__}: {exc}") from None
            raise

    def decode_call(
        self, fn: Callable[..., Any], data: bytes
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Decode arguments stored by :meth:`encode_call`, typed by ``fn``'s hints."""
        raw = self.decode(data)
        args, kwargs = list(raw.get("args", [])), dict(raw.get("kwargs", {}))
        sig = _signature(fn)
        hints = _hints(fn)
        params = list(sig.parameters.values())
        out_args: list[Any] = []
        for i, value in enumerate(args):
            if i < len(params) and params[i].kind in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                out_args.append(_convert(value, hints.get(params[i].name)))
            elif params and params[-1].kind is inspect.Parameter.VAR_POSITIONAL:
                out_args.append(_convert(value, hints.get(params[-1].name)))
            else:
                out_args.append(value)
        out_kwargs = {k: _convert(v, hints.get(k)) for k, v in kwargs.items()}
        return tuple(out_args), out_kwargs

    def return_hint(self, fn: Callable[..., Any]) -> Any:
        return _hints(fn).get("return", Any)


def _convert(value: Any, hint: Any) -> Any:
    if hint is None or hint is Any:
        return value
    try:
        return _adapter(hint).validate_python((value,))[0]
    except (pydantic.ValidationError, pydantic.PydanticSchemaGenerationError, TypeError):
        return value


# Functions are long-lived (registered once), so their signatures and resolved type
# hints are read once, not on every step result.
@lru_cache(maxsize=4096)
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn)


@lru_cache(maxsize=4096)
def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to plain JSON
        return {}


def misfit(hint: Any, value: Any) -> str | None:
    """Why ``value`` (plain JSON) does not convert to ``hint`` the way a worker converts
    a run's arguments, or None if it does (or if pydantic does not know the type: the
    worker then passes the value as it is)."""
    try:
        adapter = _adapter(hint)
    except (pydantic.PydanticSchemaGenerationError, TypeError):  # unknown or unhashable
        return None
    try:
        adapter.validate_python((value,))
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:])  # past the 1-tuple
        return f"{where + ': ' if where else ''}{first.get('msg', 'invalid value')}"
    except Exception as exc:  # a validator of the user's raising something else
        return f"{type(exc).__name__}: {exc}"
    return None
