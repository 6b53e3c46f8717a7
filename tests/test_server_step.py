"""Server optimisers on hand-computed two-round examples (Reddi et al. 2021, entry-wise on the
row/block-sparse aggregate: entries nobody updated keep their value and their state)."""

import math

import numpy as np
import pytest

from fedrule.algorithm.aggregation import DivergedError, RowBlockAggregator
from fedrule.algorithm.server_step import FedAdaptive, FedAvg, FedAvgM, make_server_step
from fedrule.errors import ConfigError
from fedrule.registry import SERVER_OPTIMIZERS
from fedrule.scenario.schema import FederatedConfig


def _step(name: str, lr: float):
    return make_server_step(FederatedConfig(server_optimizer=name, server_lr=lr))


def _aggregate(row_delta: dict[int, float]) -> RowBlockAggregator:
    """A 2 x 1 table (one block); one device of weight 2 moved the listed rows by delta."""
    agg = RowBlockAggregator(2, 1, 1)
    for row, delta in row_delta.items():
        agg.add(np.array([row]), np.array([[2.0 * delta]]), np.array([[2.0]]))
    return agg


def _two_rounds(step):
    table = np.zeros((2, 1), dtype=np.float64)
    table = step.apply(table, _aggregate({0: 1.0}))  # round 1: row 0 moves by +1
    state_after_one = {k: v.copy() for k, v in step.state_dict().items()}
    table = step.apply(table, _aggregate({0: 0.5, 1: -1.0}))  # round 2: both rows
    return table, state_after_one


def test_fedavg_is_the_average_update_times_lr():
    table, _ = _two_rounds(FedAvg(lr=0.5))
    assert table[:, 0].tolist() == [0.5 + 0.25, -0.5]


def test_fedavgm_accumulates_momentum_only_where_updated():
    table, state = _two_rounds(FedAvgM(lr=1.0, momentum=0.5))
    assert state["m"][:, 0].tolist() == [1.0, 0.0]  # row 1 untouched in round 1
    # round 2: m0 = 0.5*1 + 0.5 = 1.0 -> x0 = 1 + 1 = 2; m1 = -1 -> x1 = -1
    assert table[:, 0].tolist() == [2.0, -1.0]


@pytest.mark.parametrize("rule", ["adam", "yogi"])
def test_fedadam_and_fedyogi_by_hand(rule):
    lr, b1, b2, tau = 0.1, 0.9, 0.99, 1e-3
    table, state = _two_rounds(FedAdaptive(rule, lr, b1, b2, tau))
    # round 1, row 0: m = 0.1, v = b2 tau^2 + 0.01 (adam) or tau^2 + 0.01 (yogi: sign(v-d^2)=-1)
    v0 = tau**2
    v1 = b2 * v0 + (1 - b2) if rule == "adam" else v0 + (1 - b2)
    x1 = lr * 0.1 / (math.sqrt(v1) + tau)
    assert state["m"][0, 0] == pytest.approx(0.1)
    assert state["v"][0, 0] == pytest.approx(v1)
    assert state["v"][1, 0] == pytest.approx(v0)  # untouched: its state stays put
    # round 2, row 0: d = 0.5
    m2 = b1 * 0.1 + (1 - b1) * 0.5
    adam_v2 = b2 * v1 + (1 - b2) * 0.25
    v2 = adam_v2 if rule == "adam" else v1 - (1 - b2) * 0.25 * np.sign(v1 - 0.25)
    assert table[0, 0] == pytest.approx(x1 + lr * m2 / (math.sqrt(v2) + tau))
    # round 2, row 1 (first update): d = -1
    v_row1 = b2 * v0 + (1 - b2) if rule == "adam" else v0 + (1 - b2)
    assert table[1, 0] == pytest.approx(lr * (1 - b1) * -1.0 / (math.sqrt(v_row1) + tau))


def test_untouched_entries_stay_put_for_every_optimizer():
    for name in SERVER_OPTIMIZERS.own_names():
        step = _step(name, lr=0.1)
        table = np.array([[3.0], [7.0]], dtype=np.float32)
        out = step.apply(table, _aggregate({0: 1.0}))
        assert out[1, 0] == 7.0, name
        assert out.dtype == np.float32


def test_state_round_trips_and_divergence_is_caught():
    step = _step("fedadam", lr=0.1)
    step.apply(np.zeros((2, 1)), _aggregate({0: 1.0}))
    other = _step("fedadam", lr=0.1)
    other.load_state_dict(step.state_dict())
    a = step.apply(np.zeros((2, 1)), _aggregate({1: 1.0}))
    b = other.apply(np.zeros((2, 1)), _aggregate({1: 1.0}))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(DivergedError):
        FedAvg(1.0).apply(np.zeros((2, 1)), _aggregate({0: float("inf")}))
    with pytest.raises(ConfigError, match="unknown server optimizer"):
        _step("sgd", 1.0)
