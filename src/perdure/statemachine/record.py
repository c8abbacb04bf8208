"""What a state-machine step works on (a :class:`Record`) and what it may answer
besides the next status (an :class:`Outcome`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
S = TypeVar("S", bound=enum.Enum)


class OutcomeKind(enum.Enum):
    SKIP = "skip"  # no change: the record stays in its status, as it was
    REPEAT = "repeat"  # keep the status, save the record, run the step again
    PAUSE = "pause"  # pause the run; resuming it runs the step again
    CANCEL = "cancel"  # cancel the run


@dataclass(frozen=True)
class Outcome:
    """A step's answer other than a next status. Get one from a :class:`Record`:
    ``return r.skip()``, ``r.repeat()``, ``r.pause("why")`` or ``r.cancel("why")``."""

    kind: OutcomeKind
    reason: str = ""


@dataclass
class Record(Generic[T]):
    """One run of a state machine, as its steps, callbacks and hooks see it.

    ``data`` is the user's record (the machine's ``record=`` type); change it in
    place and the change is saved with the status the step returns (or with
    ``repeat()``). It is a copy: a step that fails, or answers ``skip()`` or an
    invalid status, changes nothing.
    """

    key: str  # the business key the run was triggered with
    run_id: str
    status: enum.Enum
    data: T

    def skip(self) -> Outcome:
        """Change nothing: the record stays in its status as it was (it waits there
        for a callback, a timeout or a connection)."""
        return Outcome(OutcomeKind.SKIP)

    def repeat(self) -> Outcome:
        """Save ``data`` as it is now, stay in this status and run the step again
        (a loop that accumulates state until it returns the next status)."""
        return Outcome(OutcomeKind.REPEAT)

    def pause(self, reason: str = "") -> Outcome:
        """Pause the run (the ``on_pause`` hook runs first); the record and status are
        kept, and resuming the run runs this step again."""
        return Outcome(OutcomeKind.PAUSE, reason)

    def cancel(self, reason: str = "") -> Outcome:
        """Cancel the run (the ``on_cancel`` hook runs); the record is kept as it was."""
        return Outcome(OutcomeKind.CANCEL, reason)
