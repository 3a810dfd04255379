"""Random operation sequences against the memory broker, checked against a reference
model after every step (the model and the machine: tests/support/broker_model.py).

500 sequences of 40 steps, run as four test cases of 125 (each its own random
exploration): one case of 500 took 28 s on a quiet machine and passed pytest's
120 s timeout on a loaded one, the last test of a run; four spread over the xdist
workers."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from support.broker_model import BrokerMachine

PARTS = 4
EXAMPLES = 500  # in all


def _part(n: int) -> Any:
    machine: type[BrokerMachine] = type(f"BrokerMachine{n}", (BrokerMachine,), {})
    case = machine.TestCase
    case.settings = settings(max_examples=EXAMPLES // PARTS, stateful_step_count=40, deadline=None)
    return case


TestBrokerStateMachine1 = _part(1)
TestBrokerStateMachine2 = _part(2)
TestBrokerStateMachine3 = _part(3)
TestBrokerStateMachine4 = _part(4)
