"""Distributions of per-device values: parameters checked with one-line errors naming the key,
quantiles exact where they can be computed by hand."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from fedrule.distributions import (
    DISTRIBUTIONS,
    Fixed,
    Lognormal,
    Normal,
    Uniform,
    parse_distribution,
)
from fedrule.errors import ConfigError


def test_a_number_is_a_fixed_value():
    dist = parse_distribution(20, "x")
    assert dist == Fixed(20.0)
    assert dist.quantile(np.array([0.1, 0.9])).tolist() == [20.0, 20.0]
    assert parse_distribution({"fixed": {"value": 3}}, "x") == Fixed(3.0)


def test_lognormal_median_and_spread():
    dist = parse_distribution({"lognormal": {"median": 500, "sigma": 0.5}}, "x")
    assert dist == Lognormal(500.0, 0.5)
    assert dist.quantile(np.array([0.5]))[0] == pytest.approx(500.0, rel=1e-15)
    # the 84.13% quantile of a lognormal is median * e^sigma (z = 1)
    assert dist.quantile(np.array([stats.norm.cdf(1.0)]))[0] == pytest.approx(500 * math.e**0.5)
    assert parse_distribution({"lognormal": {"median": 2}}, "x").sigma == 0.6  # FedScale's


def test_uniform_is_linear_in_the_uniform():
    dist = parse_distribution({"uniform": {"low": 5, "high": 45}}, "x")
    assert dist == Uniform(5.0, 45.0)
    assert dist.quantile(np.array([0.0, 0.25, 1.0])).tolist() == [5.0, 15.0, 45.0]
    assert dist.lower_bound == 5.0


def test_normal_truncated_below_is_scipys_truncated_normal():
    dist = parse_distribution({"normal": {"mean": 40, "std": 10, "min": 30}}, "x")
    assert dist == Normal(40.0, 10.0, 30.0)
    u = np.linspace(0.01, 0.99, 9)
    expected = stats.truncnorm.ppf(u, (30 - 40) / 10, np.inf, loc=40, scale=10)
    np.testing.assert_allclose(dist.quantile(u), expected, rtol=1e-12)
    assert dist.lower_bound == 30.0
    assert Normal(1.0, 2.0).lower_bound == -math.inf  # untruncated


@given(st.floats(1e-12, 1 - 1e-12))
def test_values_never_leave_the_support(u):
    for dist in (Lognormal(3.0, 1.5), Uniform(1.0, 2.0), Normal(0.0, 1.0, 0.5)):
        value = dist.quantile(np.array([u]))[0]
        assert math.isfinite(value) and value >= dist.lower_bound


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (
            {"lognorm": {"median": 1}},
            "x: unknown distribution 'lognorm' (did you mean 'lognormal'?)",
        ),
        ({"lognormal": {"median": 0}}, "x.lognormal.median: must be > 0"),
        ({"lognormal": {"median": 1, "sigma": -1}}, "x.lognormal.sigma: must lie in [0, 10]"),
        ({"lognormal": {"mediam": 1}}, "x.lognormal.mediam: unknown parameter"),
        ({"lognormal": {"sigma": 1}}, "x.lognormal.median: missing required parameter"),
        ({"lognormal": {"median": "fast"}}, "x.lognormal.median: expected a number"),
        ({"lognormal": 5}, "x.lognormal: expected a mapping of parameters"),
        ({"uniform": {"low": 5, "high": 1}}, "x.uniform.high: must be >= low"),
        ({"normal": {"mean": 1, "std": -1}}, "x.normal.std: must be >= 0"),
        ({"normal": {"mean": 0, "std": 1, "min": 50}}, "x.normal.min: leaves no probability"),
        ({"uniform": {"low": 1, "high": 2}, "fixed": {"value": 1}}, "expected one distribution"),
        (float("nan"), "x: expected a finite number"),
        (True, "x: expected a number"),
        ("fast", "x: got 'fast'"),
    ],
)
def test_bad_parameters_are_one_line_errors_naming_the_key(value, needle):
    with pytest.raises(ConfigError) as err:
        parse_distribution(value, "x")
    assert needle in err.value.one_line() and "\n" not in err.value.one_line()


def test_every_registered_distribution_reads_its_own_parameters():
    examples = {
        "fixed": {"value": 1},
        "lognormal": {"median": 1},
        "uniform": {"low": 0, "high": 1},
        "normal": {"mean": 0, "std": 1},
    }
    assert set(examples) == set(DISTRIBUTIONS)
    for name, params in examples.items():
        assert type(parse_distribution({name: params}, "x")) is DISTRIBUTIONS[name]
