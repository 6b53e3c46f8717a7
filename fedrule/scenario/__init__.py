"""Scenario files: schema, validation, overrides."""

from fedrule.scenario.load import dump_scenario, load_scenario, scenario_from_dict, to_plain
from fedrule.scenario.schema import Scenario

__all__ = ["Scenario", "dump_scenario", "load_scenario", "scenario_from_dict", "to_plain"]
