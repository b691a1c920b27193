"""retrotread-sim: a simulated treadmill that speaks FTMS, CSAFE and Trackmaster.

It is the *other machine* in every retrotread test: it implements the treadmill's side of each
protocol on its own and never imports retrotread.
"""

from retrotread_sim.belt import (
    BeltState,
    CommandRecord,
    MachineSpec,
    Refusal,
    SimRefused,
    SimTreadmill,
    Snapshot,
    StatusEvent,
    StatusKind,
)
from retrotread_sim.clock import LoopClock, ManualClock, SimClock

__all__ = [
    "BeltState",
    "CommandRecord",
    "LoopClock",
    "MachineSpec",
    "ManualClock",
    "Refusal",
    "SimClock",
    "SimRefused",
    "SimTreadmill",
    "Snapshot",
    "StatusEvent",
    "StatusKind",
]
