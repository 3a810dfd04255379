"""Random operation sequences against the memory broker, checked against a reference
model after every step (the model and the machine: tests/support/broker_model.py)."""

from __future__ import annotations

from hypothesis import settings
from support.broker_model import BrokerMachine

BrokerMachine.TestCase.settings = settings(max_examples=500, stateful_step_count=40, deadline=None)
TestBrokerStateMachine = BrokerMachine.TestCase
