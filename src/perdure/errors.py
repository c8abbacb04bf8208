"""Every error perdure raises derives from :class:`PerdureError`.

::

    PerdureError
    ├── ConfigurationError        bad settings, unknown URL scheme, missing extra
    ├── RegistrationError         a workflow or step declared twice, or not declared
    │   └── DagError              a DAG declared wrongly (cycle, unknown task, ...)
    ├── SerializationError        a value that cannot be encoded as a payload
    ├── InvalidArguments          a start's arguments do not fit (also a TypeError)
    ├── RunNotFound               no run with that id
    ├── RunConflict               an id already used by another workflow
    ├── RunExists                 an id taken, started with id_policy="reject"
    │   └── ScheduleExists        (perdure.schedules) a schedule id that is taken
    ├── InvalidSchedule           (perdure.schedules) a wrong cron, time zone or option
    ├── ScheduleNotFound          (perdure.schedules) no schedule with that id
    ├── RunDeduplicated           a dedup key an unfinished run of the queue holds
    │   └── MachineRunActive      a state machine already has an active run for the key
    ├── LeaseLost                 a worker's write was fenced off (another owns the run)
    ├── NonDeterminismError       workflow code no longer matches its journal
    ├── NotInWorkflow             a workflow-only call made outside a workflow
    ├── WorkflowSandboxError      workflow code tried I/O or threads on its loop
    ├── RunFailed                 awaited a run that failed (carries the ErrorInfo)
    │   └── RunCancelled          awaited a run that was cancelled (or timed out)
    ├── StepError                 inside a workflow: a step failed for good
    ├── StepTimeout               a step attempt ran past its timeout (also a TimeoutError)
    ├── ChildFailed               inside a workflow: a child run failed
    ├── TaskFailed                a DAG task failed for good (names the task)
    ├── CallbackRejected          a state-machine callback the run cannot take now
    └── NonRetryableError         raise it (or a subclass) in a step to stop retrying
        └── InvalidTransition     a state-machine step chose a status it may not go to
"""

from __future__ import annotations

import json
import traceback as _tb
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorInfo:
    """A stored error: what was raised, with what message, from where."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, (StepError, ChildFailed, RunFailed)):
            # Keep the root cause's type so a wrapped failure still says what broke.
            inner = exc.error
            return cls(inner.type, inner.message, inner.traceback)
        kind = type(exc)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else (f"{kind.__module__}.{kind.__qualname__}")
        )
        return cls(name, str(exc), "".join(_tb.format_exception(exc)))

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> ErrorInfo:
        return cls(data.get("type", "Error"), data.get("message", ""), data.get("traceback", ""))

    def to_bytes(self) -> bytes:
        """Errors are stored as plain JSON (never through the payload codec), so that
        operators can always read them."""
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> ErrorInfo:
        if not data:
            return cls("Error", "unknown error")
        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, AttributeError):
            return cls("Error", data.decode(errors="replace"))

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class PerdureError(Exception):
    """Root of every error perdure raises."""


class ConfigurationError(PerdureError):
    """The engine was configured with something it cannot use."""


class RegistrationError(PerdureError):
    """A workflow or step is declared twice, or used without being declared."""


class DagError(RegistrationError):
    """A DAG is declared or loaded wrongly (a cycle, an unknown task, parameters that
    do not match the dependencies, a malformed definition); nothing was added."""


class SerializationError(PerdureError):
    """A value cannot be encoded (or decoded) as a JSON payload."""


class InvalidArguments(PerdureError, TypeError):
    """A start's arguments do not fit the workflow's signature or the types its
    parameters declare (a state machine's record, its record type); nothing was
    stored. A TypeError too, as a wrong call is in Python."""


class RunNotFound(PerdureError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class RunConflict(PerdureError):
    """The id is already used by a run of another workflow."""

    def __init__(self, run_id: str, existing: str, requested: str) -> None:
        super().__init__(
            f"run {run_id!r} already exists as workflow {existing!r}; cannot start it as "
            f"{requested!r} (choose another id)"
        )
        self.run_id = run_id
        self.existing_workflow = existing
        self.requested_workflow = requested


class RunExists(PerdureError):
    """Started with ``id_policy="reject"`` under an id that is taken."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(
            f"run {run_id!r} already exists (status {status}); choose another id, or start "
            "with id_policy='use_existing' to get its handle"
        )
        self.run_id = run_id
        self.status = status


class RunDeduplicated(PerdureError):
    """Started with a ``dedup_key`` that an unfinished run of the same queue holds."""

    def __init__(self, queue: str, dedup_key: str, holder: str | None) -> None:
        held = f" by run {holder!r}" if holder else ""
        super().__init__(
            f"queue {queue!r} already has an unfinished run with dedup_key {dedup_key!r}"
            f"{held}; start again once it has ended, or use another key"
        )
        self.queue = queue
        self.dedup_key = dedup_key
        self.holder = holder


class RunStateError(PerdureError):
    """The run's status does not allow the operation asked for; nothing was changed."""

    def __init__(self, run_id: str, status: str, operation: str, hint: str) -> None:
        super().__init__(f"cannot {operation} run {run_id!r}: it is {status}; {hint}")
        self.run_id = run_id
        self.status = status
        self.operation = operation


class LeaseLost(PerdureError):
    """This worker no longer owns the run; its write was rejected."""


class NonDeterminismError(PerdureError):
    """Workflow code asked for something other than what its journal recorded."""

    def __init__(self, run_id: str, position: int, recorded: str, requested: str) -> None:
        super().__init__(
            f"run {run_id!r} is not deterministic at position {position}: the journal "
            f"recorded {recorded} but the code now requests {requested}. The run is held; "
            "deploy code that replays it (branch with perdure.patched() for changes), or cancel it."
        )
        self.run_id = run_id
        self.position = position
        self.recorded = recorded
        self.requested = requested


class NotInWorkflow(PerdureError):
    """A call that only makes sense inside a running workflow was made outside one."""


class WorkflowSandboxError(PerdureError):
    """Workflow code tried to do I/O or use threads; that belongs in a step."""


class RunFailed(PerdureError):
    """The awaited run failed; ``error`` holds the stored type, message and traceback."""

    def __init__(self, run_id: str, error: ErrorInfo) -> None:
        super().__init__(f"run {run_id!r} failed: {error}")
        self.run_id = run_id
        self.error = error


class RunCancelled(RunFailed):
    """The awaited run was cancelled (by request or by its timeout)."""

    def __init__(self, run_id: str, error: ErrorInfo) -> None:
        PerdureError.__init__(self, f"run {run_id!r} was cancelled: {error.message}")
        self.run_id = run_id
        self.error = error


class RunTerminated(RunFailed):
    """The awaited run was terminated by an operator (its cleanup did not run)."""

    def __init__(self, run_id: str, error: ErrorInfo) -> None:
        PerdureError.__init__(self, f"run {run_id!r} was terminated: {error.message}")
        self.run_id = run_id
        self.error = error


class StepError(PerdureError):
    """Raised into workflow code when a step failed for good (retries exhausted)."""

    def __init__(
        self,
        step: str,
        position: int,
        error: ErrorInfo,
        attempts: int,
        *,
        run_id: str | None = None,
    ) -> None:
        how = f"after {attempts} attempt(s)" if run_id is None else f"in run {run_id!r}"
        super().__init__(f"step {step!r} (position {position}) failed {how}: {error}")
        self.step = step
        self.position = position
        self.error = error
        self.attempts = attempts  # 0 for a step routed to a queue: see its run
        self.run_id = run_id  # the run a step routed to a queue ran as

    @property
    def type(self) -> str:
        return self.error.type


class ChildFailed(PerdureError):
    """Raised into workflow code when a child run failed or was cancelled."""

    def __init__(self, run_id: str, error: ErrorInfo, cancelled: bool = False) -> None:
        verb = "was cancelled" if cancelled else "failed"
        super().__init__(f"child run {run_id!r} {verb}: {error}")
        self.run_id = run_id
        self.error = error
        self.cancelled = cancelled


class TaskFailed(PerdureError):
    """A DAG task failed for good; the run fails with this error. Tasks downstream of
    it did not run; its ``on_failure`` handlers did."""

    def __init__(
        self, dag: str, task: str, error: ErrorInfo, attempts: int, notes: tuple[str, ...] = ()
    ) -> None:
        more = "".join(f"; {note}" for note in notes)
        super().__init__(
            f"task {task!r} of DAG {dag!r} failed after {attempts} attempt(s): {error}{more}"
        )
        self.dag = dag
        self.task = task
        self.error = error
        self.attempts = attempts


class StepTimeout(PerdureError, TimeoutError):
    """A step attempt ran longer than its ``timeout`` (retried like any other error)."""


class NonRetryableError(PerdureError):
    """Raise (or subclass) this in a step to fail it at once, without further attempts."""


class ContinueAsNew(BaseException):
    """Raised by :func:`perdure.continue_as_new`; the run restarts with fresh history."""

    def __init__(self, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        super().__init__("continue as new")
        self.args_ = args
        self.kwargs = kwargs


class MachineRunActive(RunDeduplicated):
    """A state machine was triggered for a business key that has an active run."""

    def __init__(self, machine: str, key: str, queue: str, dedup_key: str, holder: str | None):
        super().__init__(queue, dedup_key, holder)
        self.args = (
            f"state machine {machine!r} already has an active run for key {key!r} "
            f"(run {holder!r}); wait for it to end, or cancel it, before triggering again",
        )
        self.machine = machine
        self.key = key


class CallbackRejected(PerdureError):
    """A state-machine callback was refused: no active run for the key, or the run is
    paused or in another status. Nothing was changed."""

    def __init__(self, machine: str, key: str, run_id: str | None, why: str) -> None:
        run = f" (run {run_id!r})" if run_id else ""
        super().__init__(
            f"state machine {machine!r}, key {key!r}{run}: callback rejected, {why}; the "
            "record was not changed"
        )
        self.machine = machine
        self.key = key
        self.run_id = run_id


class InvalidTransition(NonRetryableError):
    """A state-machine step, callback or timeout answered a status its declaration does
    not allow (``to=``), or something that is not a status. The record was not changed;
    fix the code or the declaration, then retry the run."""
