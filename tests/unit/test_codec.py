"""Payload encoding: JSON in, the declared type out; never pickle."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from perdure.codec import Payloads
from perdure.errors import SerializationError


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Parcel:
    id: uuid.UUID
    sent: datetime
    blob: bytes
    color: Color
    tags: tuple[str, ...]


class Customer(pydantic.BaseModel):
    name: str
    since: datetime


def test_round_trip_by_type_hint() -> None:
    p = Payloads()
    parcel = Parcel(uuid.uuid4(), datetime(2026, 5, 1, tzinfo=UTC), b"\x00\xff", Color.RED, ("a",))
    assert p.decode(p.encode(parcel), Parcel) == parcel
    customer = Customer(name="Ada", since=datetime(2020, 1, 1, tzinfo=UTC))
    assert p.decode(p.encode(customer), Customer) == customer
    assert p.decode(p.encode(b"raw"), bytes) == b"raw"
    assert p.decode(p.encode(timedelta(seconds=3)), timedelta) == timedelta(seconds=3)
    assert p.decode(p.encode([Color.RED]), list[Color]) == [Color.RED]


def test_without_a_hint_values_come_back_as_plain_json() -> None:
    p = Payloads()
    assert p.decode(p.encode({"a": [1, 2.5, None, True]})) == {"a": [1, 2.5, None, True]}
    assert p.decode(p.encode(Color.RED)) == "red"


def test_unencodable_values_are_rejected_with_a_clear_error() -> None:
    with pytest.raises(SerializationError, match="cannot encode object"):
        Payloads().encode(object())
    with pytest.raises(SerializationError):
        Payloads().encode({"f": lambda: 1})


def test_call_arguments_are_typed_by_the_signature() -> None:
    def fn(parcel: Parcel, count: int, *, note: str | None = None) -> None: ...

    p = Payloads()
    parcel = Parcel(uuid.uuid4(), datetime(2026, 5, 1, tzinfo=UTC), b"x", Color.RED, ())
    args, kwargs = p.decode_call(fn, p.encode_call(fn, (parcel, 3), {"note": "hi"}))
    assert args == (parcel, 3)
    assert kwargs == {"note": "hi"}
    with pytest.raises(TypeError, match="bad arguments for fn"):
        p.encode_call(fn, (), {})


def test_a_codec_transforms_what_is_stored() -> None:
    class Reverse:
        def encode(self, data: bytes) -> bytes:
            return data[::-1]

        def decode(self, data: bytes) -> bytes:
            return data[::-1]

    p = Payloads(Reverse())
    stored = p.encode({"secret": 1})
    assert b"secret" not in stored or stored != b'{"secret":1}'
    assert stored == b'{"secret":1}'[::-1]
    assert p.decode(stored) == {"secret": 1}
