"""perdure: durable workflows for Python.

Workflows are plain ``async def`` code whose every step is checkpointed in a
database, so they survive crashes, restarts and deploys and resume where they
stopped. See https://github.com/perdure/perdure and ``docs/``.
"""

from .app import App
from .client import Handle, RunInfo, SyncHandle
from .clock import Clock, VirtualClock
from .codec import Codec
from .errors import (
    ChildFailed,
    ConfigurationError,
    ErrorInfo,
    LeaseLost,
    NonDeterminismError,
    NonRetryableError,
    NotInWorkflow,
    PerdureError,
    RegistrationError,
    RunCancelled,
    RunConflict,
    RunExists,
    RunFailed,
    RunNotFound,
    RunStateError,
    RunTerminated,
    SerializationError,
    StepError,
    StepTimeout,
    WorkflowSandboxError,
)
from .records import IdPolicy, RunStatus
from .retry import Retry
from .worker import Worker
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
    "ChildFailed",
    "ChildHandle",
    "Clock",
    "Codec",
    "ConfigurationError",
    "ErrorInfo",
    "Handle",
    "IdPolicy",
    "LeaseLost",
    "NonDeterminismError",
    "NonRetryableError",
    "NotInWorkflow",
    "PerdureError",
    "RegistrationError",
    "Retry",
    "RunCancelled",
    "RunConflict",
    "RunExists",
    "RunFailed",
    "RunInfo",
    "RunNotFound",
    "RunStateError",
    "RunStatus",
    "RunTerminated",
    "SerializationError",
    "StepError",
    "StepFunction",
    "StepInfo",
    "StepTimeout",
    "SyncHandle",
    "VirtualClock",
    "Worker",
    "WorkflowFunction",
    "WorkflowInfo",
    "WorkflowSandboxError",
    "continue_as_new",
    "info",
    "logger",
    "now",
    "patched",
    "random",
    "receive",
    "set_event",
    "side_effect",
    "sleep",
    "start_child",
    "uuid4",
]
