"""A state machine's declarations (steps, callbacks, timeouts, connections), the
checks that keep them coherent, and their renderings (``mermaid``, ``describe``).

Nothing here runs anything: :mod:`perdure.statemachine.machine` compiles the graph
onto a workflow.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import RegistrationError
from ..retry import Retry, seconds

if TYPE_CHECKING:
    from .machine import StateMachine


@dataclass(frozen=True)
class StepSpec:
    """``machine.step(status, to=...)``: the function run on entering ``status``."""

    status: enum.Enum
    fn: Callable[..., Any]
    to: tuple[enum.Enum, ...]
    parallel: int | None
    retry: Retry
    on_failure: str  # "fail" or "pause"


@dataclass(frozen=True)
class CallbackSpec:
    """``machine.callback(status, fn, to=...)``: external input accepted in ``status``."""

    status: enum.Enum
    fn: Callable[..., Any]
    to: tuple[enum.Enum, ...]


@dataclass(frozen=True)
class TimeoutSpec:
    """``machine.timeout(status, ...)``: what happens if the run stays in ``status``
    for ``after`` (or until ``at``)."""

    status: enum.Enum
    after: float | None
    at: datetime | None
    to: tuple[enum.Enum, ...]
    fn: Callable[..., Any] | None

    def deadline(self, entered: float) -> float:
        """When it fires, for a run that entered the status at ``entered`` (epoch s)."""
        if self.at is not None:
            return self.at.timestamp()
        return entered + (self.after or 0.0)

    def label(self) -> str:
        if self.at is not None:
            return f"timeout at {self.at.isoformat(timespec='seconds')}"
        return f"timeout after {self.after:g}s"


@dataclass(frozen=True)
class ConnectSpec:
    """``machine.connect(other, reached, waiting_in=..., to=...)``: leave ``waiting_in``
    once the other machine's run with the same key has reached ``reached``."""

    other: StateMachine
    reached: enum.Enum
    waiting_in: enum.Enum
    to: tuple[enum.Enum, ...]
    fn: Callable[..., Any] | None


@dataclass
class Graph:
    """The statuses of one machine and every way out of each of them."""

    name: str
    statuses: type[enum.Enum]
    start: enum.Enum
    declared_terminal: frozenset[enum.Enum]
    steps: dict[enum.Enum, StepSpec] = field(default_factory=dict)
    callbacks: dict[enum.Enum, CallbackSpec] = field(default_factory=dict)
    timeouts: dict[enum.Enum, TimeoutSpec] = field(default_factory=dict)
    connections: dict[enum.Enum, list[ConnectSpec]] = field(default_factory=dict)
    # Statuses whose entry other machines wait for: (machine, status waited in there).
    watchers: dict[enum.Enum, list[tuple[StateMachine, enum.Enum]]] = field(default_factory=dict)

    # -- declaring --------------------------------------------------------------------

    def status(self, value: object, what: str) -> enum.Enum:
        """``value`` as one of this machine's statuses, or a clear error."""
        if isinstance(value, self.statuses):
            return value
        names = ", ".join(s.name for s in self.statuses)
        raise RegistrationError(
            f"state machine {self.name!r}: {what} {value!r} is not a {self.statuses.__name__} "
            f"(one of {names})"
        )

    def targets(self, source: enum.Enum, to: object, what: str) -> tuple[enum.Enum, ...]:
        """The ``to`` of a declaration: one status or several, none being ``source``."""
        items = list(to) if isinstance(to, Iterable) and not isinstance(to, str) else [to]
        if not items:
            raise RegistrationError(
                f"state machine {self.name!r}: {what} for {source.name} needs to=[...] "
                "(the statuses it may move the record to)"
            )
        found = tuple(self.status(t, f"{what} target") for t in items)
        if source in found:
            raise RegistrationError(
                f"state machine {self.name!r}: {what} for {source.name} lists its own status in "
                "to=; to stay in a status return r.repeat() (save and run again) or r.skip()"
            )
        return found

    def leaving(self, status: enum.Enum, what: str) -> None:
        """Refuse a way out of a status declared terminal."""
        if status in self.declared_terminal:
            raise RegistrationError(
                f"state machine {self.name!r}: {status.name} is declared terminal, so it "
                f"cannot have a {what}; remove it from terminal= or declare the {what} elsewhere"
            )

    def add_step(self, spec: StepSpec) -> None:
        self.leaving(spec.status, "step")
        if spec.status in self.steps:
            raise RegistrationError(
                f"state machine {self.name!r}: {spec.status.name} already has a step "
                f"({self.steps[spec.status].fn.__name__}); one step per status"
            )
        self.steps[spec.status] = spec

    def add_callback(self, spec: CallbackSpec) -> None:
        self.leaving(spec.status, "callback")
        if spec.status in self.callbacks:
            raise RegistrationError(
                f"state machine {self.name!r}: {spec.status.name} already has a callback "
                f"({self.callbacks[spec.status].fn.__name__}); one callback per status"
            )
        self.callbacks[spec.status] = spec

    def add_timeout(self, spec: TimeoutSpec) -> None:
        self.leaving(spec.status, "timeout")
        if spec.status in self.timeouts:
            raise RegistrationError(
                f"state machine {self.name!r}: {spec.status.name} already has a timeout; "
                "one timeout per status"
            )
        self.timeouts[spec.status] = spec

    def add_connection(self, spec: ConnectSpec) -> None:
        self.leaving(spec.waiting_in, "connection")
        self.connections.setdefault(spec.waiting_in, []).append(spec)

    # -- reading ------------------------------------------------------------------------

    def exits(self, status: enum.Enum) -> Iterator[tuple[enum.Enum, str, str]]:
        """(target, kind, label) for every declared way out of ``status``."""
        if (step := self.steps.get(status)) is not None:
            for t in step.to:
                yield t, "step", step.fn.__name__
        if (cb := self.callbacks.get(status)) is not None:
            for t in cb.to:
                yield t, "callback", cb.fn.__name__
        if (tm := self.timeouts.get(status)) is not None:
            for t in tm.to:
                yield t, "timeout", tm.label()
        for conn in self.connections.get(status, []):
            for t in conn.to:
                yield t, "connect", f"when {conn.other.name}.{conn.reached.name}"

    def allowed(self, status: enum.Enum) -> frozenset[enum.Enum]:
        return frozenset(t for t, _, _ in self.exits(status))

    def is_terminal(self, status: enum.Enum) -> bool:
        """Reaching it completes the run: declared so, or nothing leads out of it."""
        return status in self.declared_terminal or not any(True for _ in self.exits(status))

    def used(self) -> list[enum.Enum]:
        """The statuses the machine uses, in the enum's order: the start, declared
        terminals, and every source and target of a declaration."""
        seen = {self.start, *self.declared_terminal}
        for status in self.statuses:
            for target, _, _ in self.exits(status):
                seen.update((status, target))
        return [s for s in self.statuses if s in seen]

    def reachable(self) -> set[enum.Enum]:
        seen, todo = {self.start}, [self.start]
        while todo:
            for target, _, _ in self.exits(todo.pop()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    def check(self) -> None:
        """Refuse a graph with declarations no run can ever get to (a way out of a
        status that cannot be reached from the start)."""
        if self.start in self.declared_terminal:
            raise RegistrationError(
                f"state machine {self.name!r}: the start status {self.start.name} is declared "
                "terminal; every run would end at once"
            )
        reachable = self.reachable()
        orphans = [s.name for s in self.used() if s not in reachable]
        if orphans:
            raise RegistrationError(
                f"state machine {self.name!r}: no run can reach {', '.join(orphans)} from the "
                f"start status {self.start.name}; add a transition to it, or remove its "
                "declarations"
            )

    # -- rendering -------------------------------------------------------------------------

    def mermaid(self) -> str:
        """A Mermaid ``stateDiagram-v2`` of every status the machine uses and every
        allowed transition, each labelled with what takes it."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.start.name}"]
        for status in self.used():
            for target, kind, label in self.exits(status):
                text = f"callback {label}" if kind == "callback" else label
                lines.append(f"    {status.name} --> {target.name}: {text}")
        lines += [f"    {s.name} --> [*]" for s in self.used() if self.is_terminal(s)]
        return "\n".join(lines) + "\n"

    def describe(self) -> dict[str, Any]:
        """The machine as JSON-ready data: statuses, transitions and declarations."""
        return {
            "name": self.name,
            "start": self.start.name,
            "statuses": [
                {
                    "name": s.name,
                    "value": s.value,
                    "terminal": self.is_terminal(s),
                    "start": s is self.start,
                }
                for s in self.used()
            ],
            "transitions": [
                {"from": s.name, "to": t.name, "by": kind, "label": label}
                for s in self.used()
                for t, kind, label in self.exits(s)
            ],
            "steps": [
                {
                    "status": st.status.name,
                    "function": st.fn.__name__,
                    "to": [t.name for t in st.to],
                    "parallel": st.parallel,
                    "max_attempts": st.retry.max_attempts,
                    "on_failure": st.on_failure,
                }
                for st in self.steps.values()
            ],
            "callbacks": [
                {"status": c.status.name, "function": c.fn.__name__, "to": [t.name for t in c.to]}
                for c in self.callbacks.values()
            ],
            "timeouts": [
                {
                    "status": t.status.name,
                    "after_seconds": t.after,
                    "at": t.at.isoformat() if t.at is not None else None,
                    "to": [s.name for s in t.to],
                    "function": t.fn.__name__ if t.fn is not None else None,
                }
                for t in self.timeouts.values()
            ],
            "connections": [
                {
                    "waiting_in": c.waiting_in.name,
                    "machine": c.other.name,
                    "reached": c.reached.name,
                    "to": [s.name for s in c.to],
                }
                for conns in self.connections.values()
                for c in conns
            ],
        }


def timeout_spec(
    graph: Graph,
    status: enum.Enum,
    after: float | timedelta | None,
    at: datetime | None,
    to: tuple[enum.Enum, ...],
    fn: Callable[..., Any] | None,
) -> TimeoutSpec:
    """A checked timeout declaration: exactly one of ``after`` and ``at``."""
    if (after is None) == (at is None):
        raise RegistrationError(
            f"state machine {graph.name!r}: the timeout for {status.name} needs either "
            "after= (a duration) or at= (a datetime), not both"
        )
    if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
        raise RegistrationError(
            f"state machine {graph.name!r}: the timeout for {status.name} needs at= as a "
            "timezone-aware datetime (e.g. datetime(..., tzinfo=timezone.utc))"
        )
    duration = seconds(after) if after is not None else None
    if duration is not None and duration < 0:
        raise RegistrationError(
            f"state machine {graph.name!r}: the timeout for {status.name} has a negative "
            "duration; use after= of zero or more"
        )
    if fn is None and len(to) != 1:
        raise RegistrationError(
            f"state machine {graph.name!r}: the timeout for {status.name} names several "
            "statuses in to=; give one, or a function (fn=) that picks among them"
        )
    return TimeoutSpec(status, duration, at, to, fn)
