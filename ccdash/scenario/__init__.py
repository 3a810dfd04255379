"""Scenarios, load generation, simulated handlers, drills and the loss checker.

from ccdash.scenario import load_scenario, Workload
scenario = load_scenario("demo/failover-drill.toml")   # None: the default demo
engine = scenario.make_engine(seed=7)
workload = Workload(scenario, engine, seed=7)
async with engine:
    await workload.run()
report = workload.report()
"""

from ccdash.scenario.drill_record import DRILL_ACTIONS, DrillRecord
from ccdash.scenario.errors import ScenarioError
from ccdash.scenario.loader import builtin_names, load_scenario, parse_scenario
from ccdash.scenario.model import DrillSpec, LoadSpec, Scenario, SloSpec
from ccdash.scenario.report import REPORT_FIELDS, exit_code
from ccdash.scenario.run_events import Progress, RunEvent, RunPhase, WorkloadEvent
from ccdash.scenario.simulated import HandlerSpec
from ccdash.scenario.workload import Workload

__all__ = [
    "DRILL_ACTIONS",
    "REPORT_FIELDS",
    "DrillRecord",
    "DrillSpec",
    "HandlerSpec",
    "LoadSpec",
    "Progress",
    "Scenario",
    "ScenarioError",
    "SloSpec",
    "Workload",
    "RunEvent",
    "RunPhase",
    "WorkloadEvent",
    "builtin_names",
    "exit_code",
    "load_scenario",
    "parse_scenario",
]
