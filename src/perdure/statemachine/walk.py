"""One state-machine run's way through its graph, inside the machine's workflow:
enter a status (publish it and the record as run events), run its step, wait for a
callback, a connection or the timeout, move on. Deterministic: every decision comes
from a recorded step, message or timer."""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any

from ..errors import InvalidTransition, StepError
from ..operations import cancel_run, pause_run
from ..workflow import api
from ..workflow.definition import StepFunction
from .graph import TimeoutSpec
from .record import OutcomeKind

if TYPE_CHECKING:
    from .machine import StateMachine

TOPIC = "perdure.machine"  # the run's topic for callbacks and connections
_INVALID = f"{InvalidTransition.__module__}.{InvalidTransition.__qualname__}"

Answer = tuple[str, str, Any]  # (what: "to"/skip/repeat/pause/cancel, status or reason, record)


class Walk:
    """One run's way through the graph, inside its workflow (deterministic: every
    decision comes from a recorded step, message or timer)."""

    def __init__(
        self, machine: StateMachine, key: str, record: Any, carry: dict[str, Any] | None
    ) -> None:
        self.machine = machine
        self.graph = machine.graph
        self.key = key
        self.record = record
        self.run_id = api.info().run_id
        self.status = machine.graph.start
        carry = carry or {}
        self.transition: int = carry.get("transition", 0)
        self.pauses: int = carry.get("pauses", 0)
        self.entered: float | None = carry.get("entered")  # None: enter the status anew
        self.timed_out: bool = carry.get("timed_out", False)
        self.phase: str = carry.get("phase", "enter")  # where a continued run picks up
        self.moves = 0  # transitions, repeats and skipped inputs in this generation

    async def run(self, first: enum.Enum) -> Any:
        status = first
        try:
            while True:
                if self.phase == "enter":
                    await self.enter(status)
                    if self.graph.is_terminal(status):
                        await self.hook("complete")
                        return self.record
                else:
                    self.status = status
                status = await self.leave(status)
                self.phase, self.entered, self.timed_out = "enter", None, False
                self.moved_on(status)
        except asyncio.CancelledError:
            await self.hook("cancel")
            raise

    def moved_on(self, status: enum.Enum, phase: str = "enter") -> None:
        """Count a move; after ``continue_after`` of them the run continues as new
        (same run id, empty journal) where it stands, so a record that loops for ever
        keeps a short journal. What the next generation needs is carried over."""
        self.moves += 1
        if self.moves < self.machine.continue_after:
            return
        carry = {
            "transition": self.transition,
            "pauses": self.pauses,
            "entered": self.entered,
            "timed_out": self.timed_out,
            "phase": phase,
        }
        api.continue_as_new(self.key, self.record, status.name, carry=carry)

    async def enter(self, status: enum.Enum) -> None:
        """Publish the new status and record; tell machines waiting for this status."""
        self.status = status
        self.transition += 1
        api.set_event("record", self.record)
        api.set_event(f"status:{status.name}", self.record)
        api.set_event("status", {"status": status.name, "transition": self.transition})
        notify = self.machine._steps.get(("notify", status))
        if notify is not None:
            await notify(self.key)

    async def leave(self, status: enum.Enum) -> enum.Enum:
        """Run the status's step, then wait for a way out; the next status."""
        if self.entered is None:
            self.entered = api.now().timestamp()
        spec = self.graph.steps.get(status)
        if spec is not None and self.phase != "wait":
            step = self.machine._steps["step", status]
            while True:
                answer = await self.attempt(step, spec.on_failure, repeat=True)
                if answer is None:  # paused, then resumed: run the step again
                    continue
                if answer[0] == OutcomeKind.REPEAT.value:
                    self.record = answer[2]
                    api.set_event("record", self.record)
                    self.moved_on(status, "step")
                    continue
                if answer[0] == "to":
                    return self.moved(answer)
                break  # skip: wait in the status
        return await self.wait(status, self.entered)

    async def wait(self, status: enum.Enum, entered: float) -> enum.Enum:
        """Wait in ``status`` for a connection, a callback or the timeout."""
        if ("connect", status) in self.machine._steps and self.phase != "wait":
            answer = await self.attempt(self.machine._steps["connect", status], "fail")
            if answer is not None and answer[0] == "to":
                return self.moved(answer)
        timer: TimeoutSpec | None = None if self.timed_out else self.graph.timeouts.get(status)
        while True:
            left = None if timer is None else timer.deadline(entered) - api.now().timestamp()
            message = None
            if left is None or left > 0:
                message = await api.receive(TOPIC, timeout=left)
            if message is None and timer is not None:  # the timeout fired
                if timer.fn is None:
                    return timer.to[0]
                answer = await self.attempt(self.machine._steps["timeout", status], "fail")
                timer, self.timed_out = None, True  # once per entry, whatever it answered
            elif isinstance(message, dict) and message.get("kind") == "callback":
                if message.get("transition") != self.transition:
                    api.logger.info("dropped a callback meant for an earlier transition")
                    continue
                step = self.machine._steps["callback", status]
                answer = await self.attempt(step, "fail", message.get("payload"))
            elif isinstance(message, dict) and message.get("kind") == "connect":
                if ("connect", status) not in self.machine._steps:
                    continue  # it reached a status this one does not wait for: stale
                answer = await self.attempt(self.machine._steps["connect", status], "fail")
            else:
                continue
            if answer is not None and answer[0] == "to":
                return self.moved(answer)
            self.moved_on(status, "wait")  # input that changed nothing still costs journal

    def moved(self, answer: Answer) -> enum.Enum:
        self.record = answer[2]
        return self.machine.statuses[answer[1]]

    async def attempt(
        self, step: StepFunction[..., Any], on_failure: str, *extra: Any, repeat: bool = False
    ) -> Answer | None:
        """Run a transition step and carry out pause and cancel answers. None when it
        paused the run (resumed since), for an answer or a failure that ``on_failure``
        turns into a pause. ``repeat``: the step may answer ``r.repeat()``."""
        args: tuple[Any, ...] = (self.key, self.run_id, self.record, *extra)
        try:
            answer: Answer = await step(*args)
        except StepError as exc:
            if on_failure != "pause" or exc.type == _INVALID:
                raise
            await self.pause(f"{step.name} failed: {exc.error.message}")
            return None
        kind = answer[0]
        if kind == OutcomeKind.PAUSE.value:
            await self.pause(answer[1] or f"paused by {step.name}")
            return None
        if kind == OutcomeKind.CANCEL.value:
            await cancel_run(reason=answer[1] or f"cancelled by {step.name}")
            await api.receive("perdure.machine.cancelled")  # the cancellation ends this wait
        if kind == OutcomeKind.REPEAT.value and not repeat:
            raise InvalidTransition(
                f"state machine {self.machine.name!r}: only a status's step may answer "
                f"r.repeat(); {step.name} did"
            )
        return answer

    async def pause(self, reason: str) -> None:
        """Pause this run: the on_pause hook first (once), then the pause itself; the
        next step starts only when the run is resumed (by hand, or ``resume_after``)."""
        self.pauses += 1
        api.set_event("record", self.record)
        api.set_event("pauses", self.pauses)
        await self.hook("pause")
        schedule = self.machine._steps.get(("schedule_resume", None))
        if schedule is not None:
            await schedule(self.run_id, self.pauses)
        await pause_run(reason=reason)

    async def hook(self, event: str) -> None:
        step = self.machine._hooks.get(event)
        if step is not None:
            await step(self.key, self.run_id, self.status.name, self.record)
