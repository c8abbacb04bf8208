"""The shape of a DAG: the checks that it can run, and the plan it runs by.

Two kinds of edges: ``after`` (the success path: a task runs once every task it is
after has completed) and ``on_failure`` (a handler runs when the task it guards has
failed for good). Both count for cycles.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DagError
from .task import Task


@dataclass(frozen=True)
class Plan:
    """What a run of the DAG follows, worked out once from its tasks."""

    order: tuple[Task[..., Any], ...]  # success path, upstream first; ties: declaration order
    handlers: dict[str, Task[..., Any]]  # failure handlers, by name
    guards: dict[str, tuple[str, ...]]  # handler -> the tasks whose failure it handles
    inputs: inspect.Signature  # what a run takes: the root tasks' parameters
    sinks: tuple[str, ...]  # success-path tasks nothing else runs after

    @property
    def tasks(self) -> dict[str, Task[..., Any]]:
        return {task.name: task for task in (*self.order, *self.handlers.values())}


def analyse(dag: str, tasks: Sequence[Task[..., Any]], *, complete: bool) -> Plan:
    """Check ``tasks`` and plan them, or raise DagError naming what is wrong.

    While tasks are still being declared (``complete=False``), a name that no task
    has yet may be one declared later; once the DAG is complete, it is an error."""
    by_name = {task.name: task for task in tasks}
    if complete:
        if not tasks:
            raise DagError(f"DAG {dag!r} has no tasks; declare them with @dag.task()")
        _check_known(dag, tasks, by_name)
    _check_cycles(dag, tasks, by_name)
    guards: dict[str, list[str]] = {}
    for task in tasks:
        for handler in task.on_failure:
            guards.setdefault(handler, []).append(task.name)
    for task in tasks:
        _check_parameters(dag, task)
        if task.name in guards and task.after:
            raise DagError(
                f"task {task.name!r} of DAG {dag!r} handles the failure of "
                f"{_names(guards[task.name])}, so it runs when that fails: it cannot also "
                f"run after {_names(task.after)}"
            )
        waits_for = [name for name in task.after if name in guards]
        if waits_for and task.name not in guards:
            raise DagError(
                f"task {task.name!r} of DAG {dag!r} runs after {_names(waits_for)}, a failure "
                "handler that runs only when a task fails; list it in on_failure= instead"
            )
    order = _order([task for task in tasks if task.name not in guards])
    ancestors = _ancestors(order)
    if complete:
        _check_roots(dag, order, by_name)
        for name, guarded in guards.items():
            _check_handler(dag, by_name[name], guarded, ancestors)
    inputs = _inputs([task for task in order if not task.after])
    downstream = {dep for task in order for dep in task.after}
    return Plan(
        order=tuple(order),
        handlers={name: by_name[name] for name in guards if name in by_name},
        guards={name: tuple(guarded) for name, guarded in guards.items()},
        inputs=inputs,
        sinks=tuple(task.name for task in order if task.name not in downstream),
    )


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _check_known(
    dag: str, tasks: Sequence[Task[..., Any]], by_name: dict[str, Task[..., Any]]
) -> None:
    known = ", ".join(by_name)
    for task in tasks:
        for what, names in (
            ("runs after", task.after),
            ("has the failure handler", task.on_failure),
        ):
            for name in names:
                if name not in by_name:
                    raise DagError(
                        f"task {task.name!r} of DAG {dag!r} {what} {name!r}, which is not a "
                        f"task of this DAG (its tasks: {known})"
                    )


def _check_cycles(
    dag: str, tasks: Sequence[Task[..., Any]], by_name: dict[str, Task[..., Any]]
) -> None:
    """Depth-first over known edges; a back edge closes a cycle, reported in the
    direction things run (``a -> b`` when b runs after a, or handles a's failure)."""
    following: dict[str, list[str]] = {task.name: [] for task in tasks}
    for task in tasks:
        for dep in task.after:
            if dep in following:
                following[dep].append(task.name)
        for handler in task.on_failure:
            if handler in by_name:
                following[task.name].append(handler)
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        path.append(name)
        for nxt in following[name]:
            if nxt in path:
                cycle = [*path[path.index(nxt) :], nxt]
                raise DagError(f"DAG {dag!r} has a cycle: {' -> '.join(cycle)}")
            if nxt not in done:
                visit(nxt)
        path.pop()
        done.add(name)

    for task in tasks:
        if task.name not in done:
            visit(task.name)


def _check_parameters(dag: str, task: Task[..., Any]) -> None:
    """A task that runs after others takes their results by parameter name: each of
    its parameters (but those with a default) must name one of them."""
    if not task.after:
        return  # a root takes the run's input; a handler is checked once complete
    for param in task.params:
        if param.name not in task.after and param.default is inspect.Parameter.empty:
            raise DagError(
                f"parameter {param.name!r} of task {task.name!r} of DAG {dag!r} names none "
                f"of the tasks it runs after ({_names(task.after)}): a task receives each "
                "upstream result through the parameter named like that task; add "
                f"{param.name!r} to after=, give the parameter a default, or rename it"
            )


def _check_roots(
    dag: str, order: Sequence[Task[..., Any]], by_name: dict[str, Task[..., Any]]
) -> None:
    """A root's parameter named like a task is almost surely a forgotten ``after=``."""
    for task in order:
        if task.after:
            continue
        for param in task.params:
            if param.name in by_name:
                raise DagError(
                    f"parameter {param.name!r} of task {task.name!r} of DAG {dag!r} is named "
                    f"like a task, but {task.name!r} runs after nothing, so it takes the "
                    f"run's input instead: add after=[{param.name!r}], or rename the parameter"
                )


def _check_handler(
    dag: str,
    handler: Task[..., Any],
    guarded: Sequence[str],
    ancestors: dict[str, frozenset[str]],
) -> None:
    """A handler takes the error of the task that failed (the parameter named like
    it) and the results of tasks upstream of every task it handles."""
    common = frozenset.intersection(*(ancestors.get(name, frozenset()) for name in guarded))
    for param in handler.params:
        if param.default is not inspect.Parameter.empty:
            continue
        if param.name not in guarded and param.name not in common:
            upstream = f"; or upstream of all of them: {_names(sorted(common))}" if common else ""
            raise DagError(
                f"parameter {param.name!r} of failure handler {handler.name!r} of DAG "
                f"{dag!r} names no task it can receive: it handles {_names(guarded)} (a "
                f"parameter named like one receives its error){upstream}"
            )


def _order(tasks: Sequence[Task[..., Any]]) -> list[Task[..., Any]]:
    """Upstream first; among tasks ready together, the one declared first. Names not
    (yet) declared are ignored here: ``analyse`` rejects them once complete."""
    names = {task.name for task in tasks}
    placed: set[str] = set()
    out: list[Task[..., Any]] = []
    while len(out) < len(tasks):
        for task in tasks:
            if task.name not in placed and all(
                dep in placed or dep not in names for dep in task.after
            ):
                placed.add(task.name)
                out.append(task)
                break
        else:  # only a cycle leaves tasks unplaceable, and cycles were rejected
            raise AssertionError("unordered tasks left after the cycle check")
    return out


def _ancestors(order: Sequence[Task[..., Any]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for task in order:
        above: set[str] = set()
        for dep in task.after:
            above.add(dep)
            above |= out.get(dep, frozenset())
        out[task.name] = frozenset(above)
    return out


def _inputs(roots: Sequence[Task[..., Any]]) -> inspect.Signature:
    """The roots' parameters, in order of first appearance; roots sharing a name
    share the value, which is required if any of them requires it."""
    merged: dict[str, inspect.Parameter] = {}
    for task in roots:
        for param in task.params:
            given = param.replace(
                kind=inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=task.hints.get(param.name, inspect.Parameter.empty),
            )
            seen = merged.get(param.name)
            if seen is None:
                merged[param.name] = given
            elif param.default is inspect.Parameter.empty:
                merged[param.name] = seen.replace(default=inspect.Parameter.empty)
    # Required inputs first, as a signature demands; otherwise in order of appearance.
    params = sorted(merged.values(), key=lambda p: p.default is not inspect.Parameter.empty)
    return inspect.Signature(params)
