"""A task of a DAG: a function, the tasks it runs after, the tasks that handle its
failure, and how it is retried and bounded in time."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from ..errors import DagError
from ..retry import Retry, seconds

if TYPE_CHECKING:
    from datetime import timedelta

    from ..workflow.definition import StepFunction

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A task declared with ``@dag.task()``. Calling it outside a run calls the plain
    function (handy in unit tests); inside its DAG's run it is a checkpointed step."""

    def __init__(
        self,
        dag: str,
        fn: Callable[P, R],
        *,
        name: str,
        after: tuple[str, ...],
        on_failure: tuple[str, ...],
        retry: Retry | None,
        timeout: float | timedelta | None,
    ) -> None:
        if not callable(fn):
            raise DagError(f"task {name!r} of DAG {dag!r} must be a function, not {fn!r}")
        check_task_name(dag, name)
        self.dag = dag
        self.fn = fn
        self.name = name
        self.after = after
        self.on_failure = on_failure
        self.retry = retry
        self.timeout = seconds(timeout)
        if self.timeout is not None and self.timeout <= 0:
            raise DagError(f"timeout of task {name!r} of DAG {dag!r} must be positive")
        self.params = _parameters(dag, name, fn)
        self.hints = _hints(fn)
        self._step: StepFunction[..., Any] | None = None
        self.source: str | None = None  # how a loaded definition named the function

    @property
    def step(self) -> StepFunction[..., Any]:
        """The perdure step this task runs as (named ``"<dag>.<task>"``)."""
        assert self._step is not None, "a task gets its step when its DAG registers it"
        return self._step

    def bind(self, step: StepFunction[..., Any]) -> None:
        self._step = step

    @property
    def function_path(self) -> str:
        """How a stored definition names the function: as the definition it was loaded
        from did, or ``module:qualname``."""
        if self.source is not None:
            return self.source
        module = getattr(self.fn, "__module__", None) or "?"
        qualname = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"{module}:{qualname}"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<perdure task {self.name!r} of DAG {self.dag!r}>"


def check_task_name(dag: str, name: object) -> str:
    # Downstream tasks receive results by parameter name, so a task name must be one.
    if not isinstance(name, str) or not name.isidentifier():
        raise DagError(
            f"task name {name!r} of DAG {dag!r} must be a Python identifier: downstream "
            "tasks receive its result through a parameter of that name"
        )
    return name


def task_names(dag: str, what: str, refs: object) -> tuple[str, ...]:
    """Names from ``after=`` or ``on_failure=``: one task or name, or several."""
    items: Iterable[object]
    if refs is None:
        items = ()
    elif isinstance(refs, (str, Task)):
        items = (refs,)
    elif isinstance(refs, Iterable):
        items = refs
    else:
        raise DagError(f"{what} takes tasks or task names, not {refs!r}")
    names: list[str] = []
    for ref in items:
        if isinstance(ref, Task):
            if ref.dag != dag:
                raise DagError(
                    f"{what} names {ref.name!r} of DAG {ref.dag!r}; a task can only refer "
                    f"to tasks of its own DAG ({dag!r})"
                )
            name = ref.name
        elif isinstance(ref, str):
            name = check_task_name(dag, ref)
        else:
            raise DagError(f"{what} takes tasks or task names, not {ref!r}")
        if name in names:
            raise DagError(f"{what} names {name!r} twice")
        names.append(name)
    return tuple(names)


def _parameters(dag: str, name: str, fn: Callable[..., Any]) -> tuple[inspect.Parameter, ...]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise DagError(
            f"task {name!r} of DAG {dag!r}: cannot read its parameters ({exc})"
        ) from None
    params = tuple(signature.parameters.values())
    for param in params:
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise DagError(
                f"parameter {param} of task {name!r} of DAG {dag!r}: tasks take named "
                "parameters only (each named after an upstream task, or a run input), "
                "not *args, **kwargs or positional-only ones"
            )
    return params


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (in the function's own module), for the run's signature;
    an annotation that cannot be resolved is left out (its value stays plain JSON)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}
