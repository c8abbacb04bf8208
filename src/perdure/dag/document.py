"""DAG definitions as data: ``describe()`` (JSON-ready), ``mermaid()`` (a flowchart),
and reading a stored definition (a dict, JSON or YAML) back into tasks.

A stored definition names each task's function, either as ``"module:function"`` (an
import path) or as the name of a step registered on the app; without ``function``,
the task's own name is looked up as a registered step.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigurationError, DagError
from ..retry import Retry, seconds
from .graph import Plan
from .task import Task

if TYPE_CHECKING:
    from ..workflow.definition import StepFunction

DAG_KEYS = {"name", "queue", "timeout", "tasks", "edges", "inputs", "sinks"}
TASK_KEYS = {"name", "function", "after", "on_failure", "retry", "timeout"}
RETRY_KEYS = {"max_attempts", "initial_interval", "backoff", "max_interval", "non_retryable"}


# -- describing -------------------------------------------------------------------------


def describe(
    name: str, queue: str | None, timeout: float | None, tasks: list[Task[..., Any]], plan: Plan
) -> dict[str, Any]:
    return {
        "name": name,
        "queue": queue,
        "timeout": timeout,
        "tasks": [
            {
                "name": task.name,
                "function": task.function_path,
                "after": list(task.after),
                "on_failure": list(task.on_failure),
                "retry": _describe_retry(task.retry),
                "timeout": task.timeout,
            }
            for task in tasks
        ],
        # Derived from the tasks (ignored when a definition is loaded).
        "edges": [
            {"from": dep, "to": task.name, "kind": "after"} for task in tasks for dep in task.after
        ]
        + [
            {"from": task.name, "to": handler, "kind": "on_failure"}
            for task in tasks
            for handler in task.on_failure
        ],
        "inputs": list(plan.inputs.parameters),
        "sinks": list(plan.sinks),
    }


def _describe_retry(retry: Retry | None) -> dict[str, Any] | None:
    if retry is None:
        return None
    return {
        "max_attempts": retry.max_attempts,
        "initial_interval": seconds(retry.initial_interval),
        "backoff": retry.backoff,
        "max_interval": seconds(retry.max_interval),
        "non_retryable": [f"{t.__module__}:{t.__qualname__}" for t in retry.non_retryable],
    }


def mermaid(name: str, tasks: list[Task[..., Any]], plan: Plan) -> str:
    """A Mermaid flowchart: solid arrows for ``after``, dotted ones for ``on_failure``;
    failure handlers are drawn with rounded corners."""
    lines = ["flowchart TD", f"    %% DAG {name}"]
    for task in tasks:
        label = task.name + "".join(f"<br/>{detail}" for detail in _details(task))
        opening, closing = ("(", ")") if task.name in plan.handlers else ("[", "]")
        lines.append(f'    {_node(task.name)}{opening}"{label}"{closing}')
    for task in tasks:
        lines.extend(f"    {_node(dep)} --> {_node(task.name)}" for dep in task.after)
    for task in tasks:
        lines.extend(
            f"    {_node(task.name)} -. on failure .-> {_node(handler)}"
            for handler in task.on_failure
        )
    return "\n".join(lines) + "\n"


def _details(task: Task[..., Any]) -> list[str]:
    details = []
    if task.retry is not None and task.retry.max_attempts > 1:
        details.append(f"up to {task.retry.max_attempts} attempts")
    if task.timeout is not None:
        details.append(f"timeout {task.timeout:g}s")
    return details


def _node(name: str) -> str:
    # "end" is a keyword in Mermaid flowcharts; any other identifier is a valid node id.
    return f"{name}_" if name.lower() == "end" else name


# -- loading ----------------------------------------------------------------------------


def parse(definition: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A definition as a dict: given as one, as JSON or YAML text, or as a ``.json``,
    ``.yaml`` or ``.yml`` file."""
    if isinstance(definition, Path):
        text = definition.read_text()
        data = _yaml(text) if definition.suffix in (".yaml", ".yml") else _json(text)
    elif isinstance(definition, str):
        data = _json(definition) if definition.lstrip().startswith("{") else _yaml(definition)
    else:
        data = definition
    if not isinstance(data, Mapping):
        raise DagError(f"a DAG definition is a mapping with 'name' and 'tasks', not {data!r}")
    _check_keys("the DAG definition", data, DAG_KEYS)
    if "name" not in data or "tasks" not in data:
        raise DagError("a DAG definition needs 'name' and 'tasks'")
    tasks = data["tasks"]
    if not isinstance(tasks, list) or not all(isinstance(t, Mapping) for t in tasks):
        raise DagError("'tasks' of a DAG definition is a list of mappings, one per task")
    for item in tasks:
        _check_keys(f"task {item.get('name')!r}", item, TASK_KEYS)
        if "name" not in item:
            raise DagError(f"a task of the DAG definition has no 'name': {dict(item)!r}")
    return dict(data)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DagError(f"the DAG definition is not valid JSON: {exc}") from None


def _yaml(text: str) -> Any:
    try:
        # Imported by name: PyYAML is an optional extra.
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        raise ConfigurationError(
            "loading a DAG definition from YAML needs PyYAML: pip install 'perdure[yaml]'"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DagError(f"the DAG definition is not valid YAML: {exc}") from None


def _check_keys(what: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise DagError(
            f"{what} has unknown key(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(allowed))})"
        )


def resolve_function(
    task: str, spec: object, steps: Mapping[str, StepFunction[..., Any]]
) -> Callable[..., Any]:
    """``"module:function"`` is imported; any other name is a step registered on the app."""
    if not isinstance(spec, str) or not spec:
        raise DagError(f"'function' of task {task!r} must be a non-empty string, not {spec!r}")
    if ":" in spec:
        found = _import(task, spec)
        if not callable(found):
            raise DagError(f"task {task!r}: {spec!r} is not a function")
        return cast("Callable[..., Any]", found)
    step = steps.get(spec)
    if step is None:
        known = ", ".join(sorted(steps)) or "none"
        raise DagError(
            f"task {task!r} names the function {spec!r}: no step of that name is registered "
            f"on the app (registered: {known}); register it with @app.step, or give its "
            "import path as 'module:function'"
        )
    return step.fn


def _import(task: str, path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise DagError(f"task {task!r}: cannot import {path!r} ({exc})") from None
    return found


def load_retry(task: str, spec: object) -> Retry | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise DagError(f"'retry' of task {task!r} is a mapping of Retry settings, not {spec!r}")
    _check_keys(f"'retry' of task {task!r}", spec, RETRY_KEYS)
    options = dict(spec)
    options["non_retryable"] = tuple(
        _import(task, path) for path in options.get("non_retryable") or ()
    )
    try:
        return Retry(**options)
    except (TypeError, ValueError) as exc:
        raise DagError(f"'retry' of task {task!r}: {exc}") from None
