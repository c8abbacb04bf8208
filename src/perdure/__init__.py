"""perdure: durable workflows for Python.

Workflows are plain ``async def`` code whose every step is checkpointed in a
database, so they survive crashes, restarts and deploys and resume where they
stopped. See https://github.com/perdure/perdure and ``docs/``.
"""

from .app import App
from .client import Handle, RunInfo, SyncHandle
from .clock import Clock, VirtualClock
from .codec import Codec
from .dag import Dag
from .errors import (
    CallbackRejected,
    ChildFailed,
    ConfigurationError,
    DagError,
    ErrorInfo,
    InvalidArguments,
    InvalidTransition,
    LeaseLost,
    MachineRunActive,
    NonDeterminismError,
    NonRetryableError,
    NotInWorkflow,
    PerdureError,
    RegistrationError,
    RunCancelled,
    RunConflict,
    RunDeduplicated,
    RunExists,
    RunFailed,
    RunNotFound,
    RunStateError,
    RunTerminated,
    SerializationError,
    StepError,
    StepTimeout,
    TaskFailed,
    WorkflowSandboxError,
)
from .history import LogLine, StepAttempt, StepRecord
from .operations import cancel_run, pause_run, resume_run, terminate_run
from .queues import Queue, Rate
from .records import IdPolicy, RunStatus
from .replayer import ReplayResult
from .retry import Retry
from .statemachine import MachineRun, Outcome, Record, StateMachine
from .worker import Worker
from .worker.registry import WorkerInfo
from .workflow.api import (
    ChildHandle,
    continue_as_new,
    info,
    logger,
    now,
    patched,
    random,
    receive,
    set_event,
    side_effect,
    sleep,
    start_child,
    uuid4,
)
from .workflow.context import StepInfo, WorkflowInfo
from .workflow.definition import StepFunction, WorkflowFunction

__version__ = "0.1.0"

__all__ = [
    "App",
    "CallbackRejected",
    "ChildFailed",
    "ChildHandle",
    "Clock",
    "Codec",
    "ConfigurationError",
    "Dag",
    "DagError",
    "ErrorInfo",
    "Handle",
    "IdPolicy",
    "InvalidArguments",
    "InvalidTransition",
    "LeaseLost",
    "LogLine",
    "MachineRun",
    "MachineRunActive",
    "NonDeterminismError",
    "NonRetryableError",
    "NotInWorkflow",
    "Outcome",
    "PerdureError",
    "Queue",
    "Rate",
    "Record",
    "RegistrationError",
    "ReplayResult",
    "Retry",
    "RunCancelled",
    "RunConflict",
    "RunDeduplicated",
    "RunExists",
    "RunFailed",
    "RunInfo",
    "RunNotFound",
    "RunStateError",
    "RunStatus",
    "RunTerminated",
    "SerializationError",
    "StateMachine",
    "StepAttempt",
    "StepError",
    "StepFunction",
    "StepInfo",
    "StepRecord",
    "StepTimeout",
    "SyncHandle",
    "TaskFailed",
    "VirtualClock",
    "Worker",
    "WorkerInfo",
    "WorkflowFunction",
    "WorkflowInfo",
    "WorkflowSandboxError",
    "cancel_run",
    "continue_as_new",
    "info",
    "logger",
    "now",
    "patched",
    "pause_run",
    "random",
    "receive",
    "resume_run",
    "set_event",
    "side_effect",
    "sleep",
    "start_child",
    "terminate_run",
    "uuid4",
]
