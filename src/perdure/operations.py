"""Operating runs: pause, resume, retry, terminate, fork and purge, from outside a
run or (pause, resume, cancel, terminate) from inside a workflow, as recorded steps.

Each action is one atomic backend change (``Backend.change_run``), guarded by the
run's status, so two operators racing each other, or an operator racing a worker,
never leave a run half-changed. Who asked and why is recorded in the run's journal
as a ``control`` entry: directly for actions that fence the worker (retry,
terminate), through the run's inbox for pause and resume, which let the worker
finish the steps it has in flight and record them.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import ErrorInfo, NotInWorkflow, RunNotFound, RunStateError
from .records import (
    EntryKind,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    RunChange,
    RunFilter,
    RunRecord,
    RunStatus,
)
from .retry import Retry
from .workflow.context import current_instance, current_step, running_app
from .workflow.definition import StepFunction

if TYPE_CHECKING:
    from .app import App

# What retry can bring back: every end but success (fork a completed run instead),
# and held runs once code that replays them is deployed.
RETRYABLE = frozenset(
    {
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.TERMINATED,
        RunStatus.DEAD_LETTER,
        RunStatus.HELD,
    }
)
_PAUSABLE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
_UNFINISHED = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.HELD})


def default_actor() -> str:
    """Who an operator action is recorded as when the caller does not say."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def note(by: str, reason: str) -> bytes:
    """The payload of a control entry: who acted and why."""
    return json.dumps({"by": by, "reason": reason}).encode()


def control_entry(action: str, by: str, reason: str, at: float) -> JournalEntry:
    return JournalEntry(0, -1, EntryKind.CONTROL, action, note(by, reason), at)


async def _run(app: App, run_id: str) -> RunRecord:
    await app.open()
    rec = await app.backend.get_run(run_id)
    if rec is None:
        raise RunNotFound(run_id)
    return rec


def _changed(app: App, run_id: str) -> None:
    app.hub.message(run_id)  # a worker in this process holding the run looks at once
    app.hub.changed(run_id)
    app.hub.work()


async def pause(app: App, run_id: str, by: str, reason: str) -> bool:
    """Stop a pending or running run from starting anything new; steps in flight finish
    and are recorded. Returns False if it was already paused."""
    rec = await _run(app, run_id)
    now = app.clock.now()
    item = NewInboxItem(run_id, InboxKind.PAUSE, now, payload=note(by, reason))
    change = RunChange(run_id, _PAUSABLE, RunStatus.PAUSED, inbox=(item,))
    rec, applied = await app.backend.change_run(change, now)
    if not applied:
        if rec.status is RunStatus.PAUSED:
            return False
        raise RunStateError(run_id, rec.status, "pause", "only pending or running runs pause")
    _changed(app, run_id)
    wf = app.workflows.get(rec.workflow)
    step = current_step.get()
    paused_itself = step is not None and step.run_id == run_id
    if wf is not None and wf.when_paused is not None and not paused_itself:
        await wf.when_paused(run_id, rec.key, now)
    return True


async def resume(app: App, run_id: str, by: str, reason: str) -> bool:
    """Let a paused run go on; a cancelled or terminated run is retried (it continues
    from where it stopped). Returns False if the run was not paused or stopped."""
    rec = await _run(app, run_id)
    if rec.status in (RunStatus.CANCELLED, RunStatus.TERMINATED):
        return await retry(app, run_id, by, reason, action="resume")
    if rec.status is not RunStatus.PAUSED:
        if rec.status.is_active:
            return False
        raise RunStateError(
            run_id, rec.status, "resume", "only paused, cancelled or terminated runs resume"
        )
    now = app.clock.now()
    started = rec.started_at is not None
    item = NewInboxItem(run_id, InboxKind.RESUME, now, payload=note(by, reason))
    change = RunChange(
        run_id,
        frozenset({RunStatus.PAUSED}),
        RunStatus.RUNNING if started else RunStatus.PENDING,
        inbox=(item,),
        wake=started,  # one never started keeps its start time
    )
    rec, applied = await app.backend.change_run(change, now)
    if applied:
        _changed(app, run_id)
    return applied


def rewind_point(rec: RunRecord, journal: list[JournalEntry]) -> int:
    """Where a retried run goes on from: the failure or cancellation that ended it.
    Everything recorded before it is kept (those steps do not run again); what the
    code did after it, reacting to it, is forgotten (but see ``_kept_after``)."""
    if rec.status is RunStatus.FAILED:
        for entry in reversed(journal):
            if entry.failed and entry.kind is EntryKind.STEP:
                return _first_of_its_failures(journal, entry.seq)
            if entry.failed and entry.kind is EntryKind.CHILD:
                return entry.seq
    elif rec.status is RunStatus.CANCELLED:
        for entry in reversed(journal):
            if entry.kind is EntryKind.CANCEL:
                return entry.seq
    return len(journal)


def _positions_taken(entry: JournalEntry) -> int | None:
    """How many positions the code had taken when this step failed for good (before
    it heard of the failure); None for entries recorded without it."""
    if entry.kind is not EntryKind.STEP or not entry.failed or not entry.detail:
        return None
    taken = json.loads(entry.detail.partition(b"\n")[0] or b"{}").get("taken")
    return taken if isinstance(taken, int) else None


def _first_of_its_failures(journal: list[JournalEntry], seq: int) -> int:
    """The step failures that ended a run together are the last one and those before
    it that happened while it was already running (its position was taken before the
    code heard of them): steps run side by side that failed one after the other. The
    rewind goes back to the first, so that one retry brings them all back."""
    first = seq
    group = [journal[seq].pos]
    for entry in reversed(journal[:seq]):
        taken = _positions_taken(entry)
        if entry.kind is EntryKind.STEP and entry.failed:
            if taken is None or any(pos >= taken for pos in group):
                break  # a failure the code heard of before the later ones began
            first = entry.seq
            group.append(entry.pos)
    return first


def _kept_after(journal: list[JournalEntry], point: int) -> list[JournalEntry]:
    """What a retry keeps of the journal after its rewind point: the steps that were
    already running when the first failure happened (their positions taken before the
    code heard of it), which finished or failed after it. They were not a reaction to
    the failure, so a finished one is not run again; a failed one is retried too."""
    taken = _positions_taken(journal[point])
    if taken is None:
        return []
    return [
        e
        for e in journal[point + 1 :]
        if e.kind in (EntryKind.STEP, EntryKind.STEP_ATTEMPT) and 0 <= e.pos < taken
    ]


async def retry(app: App, run_id: str, by: str, reason: str, action: str = "retry") -> bool:
    """Bring an ended run back from the step that ended it (see ``rewind_point``).
    The failed step gets a fresh set of attempts (its failure stays in the journal
    as an attempt); a failed child is retried too; messages the run received after
    the failure are delivered again."""
    rec = await _run(app, run_id)
    if rec.status not in RETRYABLE:
        hint = (
            "fork it to run it again"
            if rec.status is RunStatus.COMPLETED
            else "only failed, cancelled, terminated, dead-lettered or held runs are retried"
        )
        raise RunStateError(run_id, rec.status, action, hint)
    journal = await app.backend.read_journal(run_id)
    point = rewind_point(rec, journal)
    now = app.clock.now()
    entries = [control_entry(action, by, reason, now)]
    inbox = [
        NewInboxItem(run_id, InboxKind.SIGNAL, now, topic=e.name or None, payload=e.payload)
        for e in journal[point:]
        if e.kind is EntryKind.SIGNAL
    ]
    failed = journal[point] if point < len(journal) else None
    child: str | None = None
    if failed is not None and failed.kind is EntryKind.STEP:
        kept: list[JournalEntry] = []
        for entry in (failed, *_kept_after(journal, point)):
            if entry.kind is EntryKind.STEP and entry.failed:
                # Kept as an attempt, so attempt numbers go on; a retry item starts
                # the next.
                kept.append(replace(entry, kind=EntryKind.STEP_ATTEMPT))
                key = f"retry:{rec.generation}:{entry.pos}:{entry.attempt}"
                inbox.append(NewInboxItem(run_id, InboxKind.RETRY, now, pos=entry.pos, key=key))
            else:
                kept.append(entry)
        entries[:0] = kept
    elif failed is not None and failed.kind is EntryKind.CHILD:
        started = next(
            e for e in journal if e.pos == failed.pos and e.kind is EntryKind.CHILD_STARTED
        )
        child = str(json.loads(started.payload or b'""'))
    change = RunChange(
        run_id,
        frozenset({rec.status}),
        RunStatus.RUNNING,
        fence=True,
        truncate_from=point,
        entries=tuple(entries),
        inbox=tuple(inbox),
        wake=True,
    )
    rec, applied = await app.backend.change_run(change, now)
    if not applied:  # another operator got there first
        raise RunStateError(run_id, rec.status, action, "it changed meanwhile; look again")
    _changed(app, run_id)
    if child is not None:
        # After the parent's rewind, so the child's new outcome reaches it.
        child_rec = await app.backend.get_run(child)
        if child_rec is not None and child_rec.status in RETRYABLE:
            await retry(app, child, by, f"its parent {run_id!r} was retried", action)
    return True


async def terminate(app: App, run_id: str, by: str, reason: str) -> bool:
    """End a run now: the worker holding it is fenced off (its in-flight steps'
    results are discarded), no cleanup code runs, and its unfinished children are
    terminated too. Returns False if it had already ended."""
    rec = await _run(app, run_id)
    if rec.status.is_terminal:
        return False
    now = app.clock.now()
    message = f"terminated by {by}: {reason}" if reason else f"terminated by {by}"
    change = RunChange(
        run_id,
        _UNFINISHED,
        RunStatus.TERMINATED,
        fence=True,
        entries=(control_entry("terminate", by, reason, now),),
        error=ErrorInfo("Terminated", message).to_bytes(),
    )
    rec, applied = await app.backend.change_run(change, now)
    if not applied:
        return False
    _changed(app, run_id)
    cursor: str | None = None
    while True:
        page = await app.backend.list_runs(RunFilter(parent_id=run_id), 500, cursor)
        for child in page.runs:
            if not child.status.is_terminal:
                await terminate(app, child.id, by, "its parent run was terminated")
        if page.cursor is None:
            return True
        cursor = page.cursor


def forked_journal(journal: list[JournalEntry], from_step: int) -> list[JournalEntry]:
    """The entries a fork from position ``from_step`` reuses: those of earlier
    positions, and the patch decisions taken before the first later one, numbered
    afresh. Cancellations, operator actions and logs stay with the original."""
    kept: list[JournalEntry] = []
    passed = False
    for entry in journal:
        if entry.pos >= from_step:
            passed = True
            continue
        if entry.pos >= 0 or (entry.kind is EntryKind.PATCH and not passed):
            kept.append(entry)
    return [replace(entry, seq=i) for i, entry in enumerate(kept)]


async def fork(app: App, run_id: str, from_step: int, new_id: str, by: str) -> None:
    """Start ``new_id`` as a copy of ``run_id`` that reuses what was recorded at
    positions before ``from_step`` and runs the rest again; the original is untouched."""
    rec = await _run(app, run_id)
    if not isinstance(from_step, int) or from_step < 0:
        raise ValueError("from_step must be a position >= 0 (see the run's journal)")
    journal = forked_journal(await app.backend.read_journal(run_id), from_step)
    # Each event as it last was: a run may set one key again and again.
    latest = {e.name: e.payload or b"" for e in journal if e.kind is EntryKind.EVENT}
    events = tuple(latest.items())
    now = app.clock.now()
    origin = f"forked from {run_id!r} at position {from_step}"
    journal.append(replace(control_entry("fork", by, origin, now), seq=len(journal)))
    _, created = await app.backend.create_run(
        NewRun(
            new_id,
            rec.workflow,
            rec.input,
            now,
            journal=tuple(journal),
            events=events,
            version=app.version,
            # On the original's queue, with its key and priority (not its dedup key:
            # the original may still hold it).
            key=rec.key,
            queue=rec.queue,
            priority=rec.priority,
            queued=app.queues.admits_by_turn(rec.queue),
        )
    )
    if not created:
        raise RunStateError(new_id, "taken", "fork into", "choose another id for the fork")
    app.hub.work()


async def purge(app: App, finished_before: float, batch: int = 500) -> int:
    """Delete ended runs that finished before the cutoff; returns how many."""
    await app.open()
    total = 0
    while True:
        gone = await app.backend.purge_runs(finished_before, batch)
        total += len(gone)
        if len(gone) < batch:
            return total


# -- from inside a workflow: the same actions as recorded steps ---------------------------


async def _act(action: str, run_id: str, reason: str, by: str) -> bool:
    app: App | None = running_app.get()
    assert app is not None, "a control step runs on a worker"
    try:
        if action == "cancel":
            return await app.handle(run_id).cancel(reason or f"cancelled by {by}")
        return bool(await getattr(app, action)(run_id, reason, by=by))
    except RunStateError:
        return False  # the run's status does not allow it: nothing was changed


_control: StepFunction[..., Any] = StepFunction(
    _act,
    name="perdure.control",
    # A database hiccup is retried; an unknown run is not.
    retry=Retry(max_attempts=5, initial_interval=0.5, non_retryable=(RunNotFound,)),
    timeout=None,
)


def _step(action: str, run_id: str | None, reason: str) -> Any:
    instance = current_instance()
    if instance is None:
        raise NotInWorkflow(f"perdure.{action}_run() works only inside a workflow")
    return _control(action, run_id or instance.run_id, reason, f"run {instance.run_id}")


async def pause_run(run_id: str | None = None, reason: str = "") -> bool:
    """Pause a run (this one by default): it starts no new step until an operator
    resumes it. Returns False if its status does not allow it (already paused, ended).
    Each of these functions raises StepError for an unknown run."""
    return bool(await _step("pause", run_id, reason))


async def resume_run(run_id: str, reason: str = "") -> bool:
    """Resume a paused (or bring back a cancelled or terminated) run."""
    return bool(await _step("resume", run_id, reason))


async def cancel_run(run_id: str | None = None, reason: str = "") -> bool:
    """Ask a run (this one by default) to cancel; its code may clean up."""
    return bool(await _step("cancel", run_id, reason))


async def terminate_run(run_id: str | None = None, reason: str = "") -> bool:
    """End a run (this one by default) at once, without its cleanup. Terminating this
    run ends it here: nothing after this call runs."""
    return bool(await _step("terminate", run_id, reason))
