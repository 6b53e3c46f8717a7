"""The simulated clock: a device's seconds are the formula of method.md §10, to the byte and the
second, with the bytes of real encoded payloads and of real summed uploads."""

import numpy as np
import pytest
import torch

from fedrule.device.update import DeviceDeltas, sum_cohort
from fedrule.model.elastic import ElasticLayout
from fedrule.systems.availability.always import AlwaysOnline
from fedrule.systems.clock import Clock, PhaseWork, device_seconds
from fedrule.systems.profiles import SystemProfiles


def _layout() -> ElasticLayout:
    # 7 items in groups of 2, 2 and 3; d = 8 in 4 blocks of 2 float32 values
    return ElasticLayout(8, 4, np.array([0, 0, 1, 1, 2, 2, 2]))


def _upload_bytes(layout: ElasticLayout, items: list[int], blocks: int) -> int:
    """What one device's upload is counted as: its touched rows' kept blocks and 4-byte ids."""
    kept = np.zeros((len(items), layout.num_blocks), np.float32)
    kept[:, :blocks] = 1
    deltas = DeviceDeltas(
        row_device=np.zeros(len(items), np.int64),
        row_item=np.array(items, np.int64),
        delta=np.ones((len(items), layout.dim), np.float32),
        kept=kept,
        weight=np.ones(1),
    )
    return sum_cohort(deltas, layout.block_dim * layout.bytes_per_value).bytes_up


def test_three_devices_take_the_formulas_seconds_to_the_byte_and_the_second():
    layout = _layout()
    table = torch.randn(7, 8, generator=torch.Generator().manual_seed(0))
    configs = [layout.full_config(), layout.uniform_config(2), layout.uniform_config(1)]
    payloads = [layout.encode(table, c) for c in configs]
    # metadata 16 (header) + 2 (12-bit mask) + 7 (a byte per item's group) = 25 bytes; a block is
    # 2 values x 4 bytes x the group's items (16, 16, 24 bytes)
    assert [len(p) for p in payloads] == [25 + 4 * 56, 25 + 2 * 56, 25 + 56] == [249, 137, 81]
    assert [len(p) for p in payloads] == [layout.memory_bytes(c) for c in configs]
    # rows touched (positives and negatives) x kept blocks x 8 bytes + 4 bytes per row id
    up = [
        _upload_bytes(layout, [0, 1, 2, 3], 4),
        _upload_bytes(layout, [1, 4, 6], 2),
        _upload_bytes(layout, [2, 5], 1),
    ]
    assert up == [4 * 4 * 8 + 16, 3 * 2 * 8 + 12, 2 * 8 + 8] == [144, 60, 24]
    profiles = SystemProfiles(
        examples_per_second=np.array([100.0, 10.0, 1.0]),
        download_mbps=np.array([8.0, 0.8, 0.08]),  # 10^6, 10^5, 10^4 bytes per second
        upload_mbps=np.array([2.0, 0.4, 0.08]),  # 250,000, 50,000, 10,000 bytes per second
        latency_s=np.array([0.05, 0.2, 1.0]),
        availability=AlwaysOnline(3),
    )
    work = PhaseWork(
        bytes_down=np.array([len(p) for p in payloads]),
        examples=np.array([5, 3, 8]),  # training positives; 2 local epochs
        bytes_up=np.array(up),
        passes=2,
    )
    seconds = device_seconds(profiles, np.arange(3), work)
    expected = [
        0.05 + 249 / 1e6 + 5 * 2 / 100 + 144 / 250_000,  # 0.150825 s
        0.2 + 137 / 1e5 + 3 * 2 / 10 + 60 / 50_000,  # 0.80257 s
        1.0 + 81 / 1e4 + 8 * 2 / 1 + 24 / 10_000,  # 17.0105 s
    ]
    np.testing.assert_allclose(seconds.total, expected, rtol=1e-15)
    np.testing.assert_allclose(seconds.total, [0.150825, 0.80257, 17.0105], rtol=1e-15)
    np.testing.assert_allclose(seconds.download, [249e-6, 137e-5, 81e-4], rtol=1e-15)
    np.testing.assert_allclose(seconds.compute, [0.1, 0.6, 16.0], rtol=1e-15)
    np.testing.assert_allclose(seconds.upload, [144 / 250_000, 60 / 50_000, 24 / 10_000])
    # a subset of devices, in any order, costs the same per device
    again = device_seconds(
        profiles,
        np.array([2, 0]),
        PhaseWork(work.bytes_down[[2, 0]], work.examples[[2, 0]], work.bytes_up[[2, 0]], 2),
    )
    assert again.total.tolist() == seconds.total[[2, 0]].tolist()


def test_a_quantity_not_given_costs_nothing():
    profiles = SystemProfiles(
        examples_per_second=np.array([np.inf]),
        download_mbps=np.array([8.0]),
        upload_mbps=np.array([np.inf]),
        latency_s=np.array([0.0]),
        availability=AlwaysOnline(1),
    )
    work = PhaseWork(np.array([2_000_000]), np.array([10**6]), np.array([10**9]), passes=3)
    assert device_seconds(profiles, np.array([0]), work).total.tolist() == [2.0]


def test_profiles_refuse_impossible_values():
    ok = dict(
        examples_per_second=np.ones(2),
        download_mbps=np.ones(2),
        upload_mbps=np.ones(2),
        latency_s=np.zeros(2),
        availability=AlwaysOnline(2),
    )
    SystemProfiles(**ok)
    for name, bad in [
        ("download_mbps", np.array([1.0, -1.0])),
        ("examples_per_second", np.array([0.0, 1.0])),
        ("latency_s", np.array([np.inf, 0.0])),
        ("upload_mbps", np.array([np.nan, 1.0])),
        ("latency_s", np.zeros(3)),
    ]:
        with pytest.raises(ValueError):
            SystemProfiles(**{**ok, name: bad})


def test_the_clock_only_moves_forward_and_round_trips_its_state():
    clock = Clock()
    assert clock.advance(2.5) == 2.5
    assert clock.wait_until(1.0) == 2.5  # the past: no move
    assert clock.wait_until(10.0) == 10.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.wait_until(float("inf"))
    assert Clock.from_state(clock.state_dict()).now_s == 10.0
