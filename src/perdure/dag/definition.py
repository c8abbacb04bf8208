"""``app.dag(name)``: tasks with dependencies, compiled onto one ordinary workflow.

The DAG registers a workflow named like it, whose body runs the tasks (see
``execution``); each task is a step named ``"<dag>.<task>"``. So a DAG run is an
ordinary run: it is started, listed, paused, cancelled, retried from the task that
failed, forked and replayed like any other, and a restarted worker does not run a
recorded task again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..errors import DagError
from ..queues import Queue, check_name
from ..retry import Retry, seconds
from ..workflow.definition import WorkflowFunction
from . import document, execution
from .graph import Plan, analyse
from .task import Task, task_names

if TYPE_CHECKING:
    from ..app import App

P = ParamSpec("P")
R = TypeVar("R")


class Dag:
    """Tasks with dependencies, run as one workflow (``app.dag(name)``).

    Declare tasks with :meth:`task`; start a run with ``app.start(dag, ...)``, whose
    arguments go to the root tasks (those that run after nothing) by parameter name.
    Each other task receives the result of each task it runs after through the
    parameter named like that task. The run's result is the result of the task that
    ends the DAG, or ``{name: result}`` when several do.
    """

    kind = "dag"  # in app.definitions()

    def __init__(
        self,
        app: App,
        name: str,
        *,
        queue: Queue | str | None = None,
        timeout: float | timedelta | None = None,
    ) -> None:
        self.app = app
        self.name = check_name("DAG name", name)
        self.queue = app._queue_name(queue)
        self.timeout = seconds(timeout)
        self._tasks: dict[str, Task[..., Any]] = {}
        self._plan: Plan | None = None  # set once complete: no task may be added then
        self._body = self._make_body()
        self._workflow: WorkflowFunction[..., Any] = WorkflowFunction(
            self._body, name=name, timeout=timeout, queue=self.queue
        )
        self._workflow.definition = self
        app._register(app.workflows, name, self._workflow, "workflow")

    def __repr__(self) -> str:
        return f"<perdure DAG {self.name!r} ({len(self._tasks)} tasks)>"

    # -- declaring ------------------------------------------------------------------------

    def task(
        self,
        fn: Callable[P, R] | None = None,
        *,
        name: str | None = None,
        after: Task[..., Any] | str | Iterable[Task[..., Any] | str] | None = None,
        on_failure: Task[..., Any] | str | Iterable[Task[..., Any] | str] | None = None,
        retry: Retry | None = None,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Declare a task (``async def`` or plain ``def``, as for ``@app.step``).

        ``after``: the tasks (or task names) it runs after; it receives each one's
        result through the parameter named like it. ``on_failure``: tasks that run
        when this one fails for good (a rollback); they receive its error, an
        :class:`perdure.ErrorInfo`, through the parameter named like this task, and
        the run still fails. ``retry`` and ``timeout`` are the step's (per attempt).
        Raises DagError, adding nothing, if the DAG would not be valid."""

        def declare(func: Callable[P, R]) -> Task[P, R]:
            task: Task[P, R] = Task(
                self.name,
                func,
                name=name or str(getattr(func, "__name__", "")),
                after=task_names(self.name, "after=", after),
                on_failure=task_names(self.name, "on_failure=", on_failure),
                retry=retry,
                timeout=timeout,
            )
            self._add(task)
            return task

        return declare(fn) if fn is not None else declare

    def _add(self, task: Task[..., Any]) -> None:
        if self._plan is not None:
            raise DagError(
                f"DAG {self.name!r} is complete already (it was started, described or "
                f"validated): declare task {task.name!r} before that"
            )
        if task.name in self._tasks:
            raise DagError(
                f"DAG {self.name!r} already has a task named {task.name!r}; pass name=... "
                "to tell them apart"
            )
        plan = analyse(self.name, [*self._tasks.values(), task], complete=False)
        step = self.app.step(
            name=f"{self.name}.{task.name}", retry=task.retry, timeout=task.timeout
        )
        task.bind(step(task.fn))
        self._tasks[task.name] = task
        self._describe_inputs(plan)

    @property
    def tasks(self) -> dict[str, Task[..., Any]]:
        """The tasks, by name, in declaration order."""
        return dict(self._tasks)

    # -- using ----------------------------------------------------------------------------

    def validate(self) -> None:
        """Check the complete DAG (every task named in ``after``/``on_failure`` exists,
        handlers' parameters) and freeze it. Starting, describing or drawing it does
        this for you. Raises DagError naming what is wrong."""
        self._complete()

    @property
    def workflow_function(self) -> WorkflowFunction[..., Any]:
        """The workflow the DAG runs as (``app.start`` takes the DAG itself)."""
        self._complete()
        return self._workflow

    def describe(self) -> dict[str, Any]:
        """The definition as JSON-ready data: name, queue, timeout, and each task's
        function (``module:qualname``), ``after``, ``on_failure``, ``retry`` and
        ``timeout``; plus what follows from them: ``edges``, ``inputs`` and ``sinks``.
        :meth:`load` reads it back."""
        plan = self._complete()
        return document.describe(
            self.name, self.queue, self.timeout, list(self._tasks.values()), plan
        )

    def mermaid(self) -> str:
        """A Mermaid flowchart of the DAG (paste it into Markdown that renders Mermaid)."""
        return document.mermaid(self.name, list(self._tasks.values()), self._complete())

    @classmethod
    def load(
        cls, app: App, definition: Mapping[str, Any] | str | Path, *, name: str | None = None
    ) -> Dag:
        """A DAG from a stored definition: a dict (such as :meth:`describe` returns),
        JSON or YAML text (YAML needs ``perdure[yaml]``), or a path to a ``.json``,
        ``.yaml`` or ``.yml`` file. Each task's ``function`` is ``"module:function"``
        or the name of a step registered on ``app`` (by default, the task's name).
        ``name`` overrides the definition's. The whole definition is checked before
        anything is registered; a problem raises DagError."""
        data = document.parse(definition)
        dag_name = check_name("DAG name", name or data["name"])
        tasks: list[Task[..., Any]] = []
        for item in data["tasks"]:
            task_name = item["name"]
            source = item.get("function", task_name)
            task: Task[..., Any] = Task(
                dag_name,
                document.resolve_function(task_name, source, app.steps),
                name=task_name,
                after=task_names(dag_name, "after", item.get("after")),
                on_failure=task_names(dag_name, "on_failure", item.get("on_failure")),
                retry=document.load_retry(task_name, item.get("retry")),
                timeout=_timeout(task_name, item.get("timeout")),
            )
            task.source = source
            tasks.append(task)
        names = [task.name for task in tasks]
        for task_name in names:
            if names.count(task_name) > 1:
                raise DagError(f"DAG {dag_name!r} has two tasks named {task_name!r}")
        analyse(dag_name, tasks, complete=True)
        dag = cls(app, dag_name, queue=data.get("queue"), timeout=data.get("timeout"))
        for task in tasks:
            dag._add(task)
        dag.validate()
        return dag

    # -- the workflow it compiles to --------------------------------------------------------

    def _complete(self) -> Plan:
        if self._plan is None:
            self._plan = analyse(self.name, list(self._tasks.values()), complete=True)
            self._describe_inputs(self._plan)
        return self._plan

    def _make_body(self) -> Callable[..., Any]:
        dag = self

        async def run_dag(*args: Any, **kwargs: Any) -> Any:
            plan = dag._complete()
            inputs = plan.inputs.bind(*args, **kwargs).arguments
            return await execution.run(dag.name, plan, dict(inputs))

        # What a failed start's message calls it ("bad arguments for DAG 'orders': ...").
        run_dag.__name__ = run_dag.__qualname__ = f"DAG {self.name!r}"
        return run_dag

    def _describe_inputs(self, plan: Plan) -> None:
        """Give the body the roots' parameters and the result's type, which is how
        ``app.start`` checks a run's input before writing anything, and how inputs and
        results are decoded into their types."""
        sinks = [self._tasks[name] for name in plan.sinks if name in self._tasks]
        returns: Any = dict[str, Any]
        if len(sinks) == 1:
            returns = sinks[0].hints.get("return", Any)
        annotations = {
            param.name: param.annotation
            for param in plan.inputs.parameters.values()
            if param.annotation is not inspect.Parameter.empty
        }
        annotations["return"] = returns
        self._body.__signature__ = plan.inputs.replace(  # type: ignore[attr-defined]
            return_annotation=returns
        )
        self._body.__annotations__ = annotations


def _timeout(task: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DagError(f"'timeout' of task {task!r} is a number of seconds, not {value!r}")
    return float(value)
