"""The kill points' specification: ``FEDRULE_KILL_AT=STEP[:N][:SIGNAL]`` (the runs that reach
every step, and the kills at each, are in tests/test_kill_resume.py)."""

import signal

import pytest

from fedrule import killpoints
from fedrule.errors import ConfigError


def test_a_step_alone_kills_at_its_first_occurrence_with_sigkill():
    assert killpoints.parse("dispatch") == killpoints.KillAt("dispatch", 1, signal.SIGKILL)


def test_the_count_and_the_signal_come_in_either_order():
    expected = killpoints.KillAt("round checkpoint", 3, signal.SIGTERM)
    assert killpoints.parse("round checkpoint:3:TERM") == expected
    assert killpoints.parse("round checkpoint:term:3") == expected
    assert killpoints.parse("write tiers.csv:INT").signal == signal.SIGINT


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dispatched", "unknown step 'dispatched'"),
        ("dispatch:0", "got '0'"),
        ("dispatch:HUP", "got 'HUP'"),
    ],
)
def test_a_bad_specification_is_a_one_line_error_naming_the_variable(spec, message):
    with pytest.raises(ConfigError, match=message) as err:
        killpoints.parse(spec)
    assert err.value.one_line().startswith("FEDRULE_KILL_AT: ")


def test_file_steps_name_the_file_with_seed_numbers_as_a_star():
    assert killpoints.file_step("rounds-seed12.csv") == "write rounds-seed*.csv"
    assert killpoints.file_step("checkpoint/seed0.json") == "write checkpoint/seed*.json"
    assert killpoints.file_step("tiers.csv") == "write tiers.csv"
    listed = [s for s in killpoints.STEPS if s.startswith("write ")]
    assert all(killpoints.file_step(s.removeprefix("write ")) == s for s in listed)


def test_steps_are_unique_and_hold_no_separator():
    assert len(set(killpoints.STEPS)) == len(killpoints.STEPS)
    assert not [s for s in killpoints.STEPS if ":" in s]


def test_recording_sees_every_step_reached_and_kills_nothing():
    with killpoints.recording() as outer:
        killpoints.reached("search")
        with killpoints.recording() as inner:
            killpoints.reached("dispatch")
    assert outer == ["search", "dispatch"] and inner == ["dispatch"]
