"""State machines: a workflow written as statuses and the steps, callbacks, timeouts
and connections that move a typed record between them (``app.state_machine``).

A machine compiles onto the kernel: one workflow per machine, one run per record,
one ordinary step per status. See ``docs/state-machines.md``.
"""

from .machine import MachineRun, StateMachine
from .record import Outcome, OutcomeKind, Record

__all__ = ["MachineRun", "Outcome", "OutcomeKind", "Record", "StateMachine"]
