"""DAG workflows: tasks with dependencies, compiled onto an ordinary workflow.

``app.dag(name)`` returns a :class:`Dag`; see ``docs/dags.md``.
"""

from ..errors import DagError, TaskFailed
from .definition import Dag
from .task import Task

__all__ = ["Dag", "DagError", "Task", "TaskFailed"]
