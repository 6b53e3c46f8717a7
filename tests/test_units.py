from fractions import Fraction

import pytest

from fedrule.errors import BudgetError
from fedrule.units import format_bytes, parse_budget


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (262144, 262144),
        ("256KiB", 262144),
        ("1.5MB", 1_500_000),
        ("4MiB", 4 * 1024**2),
        ("2kb", 2000),
    ],
)
def test_absolute_budgets(text, expected):
    assert parse_budget(text).resolve(10**9) == expected


@pytest.mark.parametrize(
    ("text", "share"),
    [(0.25, Fraction(1, 4)), ("1/16", Fraction(1, 16)), ("6.25%", Fraction(1, 16)), (1, 1)],
)
def test_shares_of_the_full_table(text, share):
    budget = parse_budget(text)
    assert budget.share == share
    assert budget.resolve(1600) == int(1600 * share)


@pytest.mark.parametrize("bad", ["12 parsecs", "-3", "0", "3/2", "1.5", True, None, "abc"])
def test_bad_budgets_name_the_key(bad):
    with pytest.raises(BudgetError, match="fleet.budget"):
        parse_budget(bad, path="fleet.budget")


def test_format_bytes():
    assert format_bytes(262144) == "256.0 KiB"
    assert format_bytes(12) == "12 B"
