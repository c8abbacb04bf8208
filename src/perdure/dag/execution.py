"""A DAG run: the body of the workflow a DAG compiles to.

Each task is a step, so the kernel records it, retries it and never runs it again
once recorded. Tasks whose upstream tasks have all completed are started together
and run concurrently; they are started in plan order (upstream first, then
declaration order), so every replay asks for the same steps at the same positions.

When a task fails for good, nothing new is started; the tasks already running are
awaited (their outcomes are recorded like any other), then the ``on_failure``
handlers of the failed tasks run, one after another, and the run fails with
:class:`perdure.TaskFailed` naming the first task that failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ErrorInfo, StepError, TaskFailed
from .graph import Plan
from .task import Task


async def run(dag: str, plan: Plan, inputs: dict[str, Any]) -> Any:
    """Run the plan with the run's ``inputs`` (by parameter name). Returns the sink's
    result, or ``{sink: result}`` when several tasks end the DAG."""
    results: dict[str, Any] = {}
    failed: dict[str, StepError] = {}  # in the order the failures were recorded
    running: dict[str, asyncio.Future[Any]] = {}
    while True:
        if not failed:
            for task in plan.order:
                if (
                    task.name not in results
                    and task.name not in running
                    and all(dep in results for dep in task.after)
                ):
                    source = results if task.after else inputs
                    running[task.name] = _start(task, _arguments(task, source))
        if not running:
            break
        await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
        for task in plan.order:  # settle in plan order, not in set order
            future = running.get(task.name)
            if future is None or not future.done():
                continue
            del running[task.name]
            try:
                results[task.name] = future.result()
            except StepError as exc:
                failed[task.name] = exc
    if failed:
        notes = await _handle_failures(plan, failed, results)
        first, error = next(iter(failed.items()))
        also = [f"task {name!r} failed too: {exc.error}" for name, exc in failed.items()]
        raise TaskFailed(dag, first, error.error, error.attempts, (*also[1:], *notes))
    if len(plan.sinks) == 1:
        return results[plan.sinks[0]]
    return {name: results[name] for name in plan.sinks}


def _start(task: Task[..., Any], arguments: dict[str, Any]) -> asyncio.Future[Any]:
    # Inside a run, calling the step takes its position now and returns its future.
    future: asyncio.Future[Any] = asyncio.ensure_future(task.step(**arguments))
    return future


def _arguments(task: Task[..., Any], available: dict[str, Any]) -> dict[str, Any]:
    """The values ``task`` takes by parameter name; a parameter with nothing under
    its name keeps its default (the checks made sure it has one)."""
    return {param.name: available[param.name] for param in task.params if param.name in available}


async def _handle_failures(
    plan: Plan, failed: dict[str, StepError], results: dict[str, Any]
) -> list[str]:
    """Run the failure handlers of every failed task (each handler once), and those
    of a handler that fails in turn. Returns notes on the handlers that failed."""
    notes: list[str] = []
    errors: dict[str, ErrorInfo] = {name: exc.error for name, exc in failed.items()}
    ran: set[str] = set()
    pending = list(failed)
    while pending:
        name = pending.pop(0)
        for handler_name in plan.tasks[name].on_failure:
            if handler_name in ran:
                continue
            ran.add(handler_name)
            handler = plan.handlers[handler_name]
            available = dict(results)
            for guarded in plan.guards[handler_name]:
                available[guarded] = errors.get(guarded)  # None: that one did not fail
            try:
                await _start(handler, _arguments(handler, available))
            except StepError as exc:
                errors[handler_name] = exc.error
                notes.append(f"failure handler {handler_name!r} failed too: {exc.error}")
                pending.append(handler_name)
    return notes
