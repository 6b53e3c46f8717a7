"""The per-device update pipeline: each device's own update, processed BEFORE any sum.

Local training leaves every device of a cohort with its own update: one delta row per item row
it touched (positives and sampled negatives), which blocks of that row it held, and its weight
(its number of training examples). ``UpdateStep``s run on each device's update alone — clipping,
noise and compression go here, on the device side — and only then does ``sum_cohort`` add the
cohort's updates into what a node sends back.

Every step is batched over the cohort (segment sums over ``row_device``) but is exactly what each
device would compute alone: nothing in a step mixes two devices.

Each kind of step is an ``UpdateStepKind`` registered in ``fedrule.registry.UPDATE_STEPS``:
fedrule's own here (``unit-weight``, ``decoys``, ``clip``, ``dense``, ``local-noise``, which the
``privacy`` keys turn on), a package's through an entry point of the group
``fedrule.update_steps``, run after fedrule's when ``privacy.update_steps`` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import numpy as np
import torch

from fedrule.errors import ConfigError
from fedrule.privacy.secagg import SecAggParams, params_of
from fedrule.registry import UPDATE_STEPS
from fedrule.scenario.schema import PrivacyConfig
from fedrule.scenario.validate import doc, options_from, plugin_options


@dataclass(frozen=True, eq=False)
class DeviceDeltas:
    """Updates of a cohort's devices, one entry per (device, touched item row).

    ``row_device[r]`` is the cohort position of the device that owns entry r, ``row_item[r]`` the
    item, ``delta[r]`` its change (d values) and ``kept[r]`` its held blocks (1/0 per block).
    ``weight[k]`` is device k's aggregation weight (its number of training examples).
    ``below_clip[k]`` (set by ``ClipUpdate``) is device k's bit "my update norm <= C" before
    clipping, for adaptive clipping.
    """

    row_device: np.ndarray
    row_item: np.ndarray
    delta: np.ndarray
    kept: np.ndarray
    weight: np.ndarray
    below_clip: np.ndarray | None = None

    @staticmethod
    def empty(weight: np.ndarray, dim: int, num_blocks: int) -> DeviceDeltas:
        none = np.zeros(0, dtype=np.int64)
        return DeviceDeltas(
            none,
            none,
            np.zeros((0, dim), np.float32),
            np.zeros((0, num_blocks), np.float32),
            np.asarray(weight, dtype=np.float64),
        )

    @property
    def num_devices(self) -> int:
        return int(self.weight.size)

    def norms(self) -> np.ndarray:
        """L2 norm of each device's whole update (over all its rows and columns)."""
        squares = (self.delta.astype(np.float64) ** 2).sum(axis=1)
        return np.sqrt(np.bincount(self.row_device, squares, minlength=self.num_devices))


class UpdateStep(Protocol):
    """One stage of the device-side pipeline: a device's update in, a device's update out."""

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas: ...


@dataclass(frozen=True)
class ClipUpdate:
    """Scale each device's whole update to L2 norm at most ``max_norm`` (DP-FedAvg clipping)."""

    max_norm: float

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        norms = deltas.norms()
        scale = np.minimum(1.0, self.max_norm / np.maximum(norms, 1e-30))
        delta = deltas.delta * scale[deltas.row_device, None].astype(np.float32)
        return replace(deltas, delta=delta, below_clip=norms <= self.max_norm)


@dataclass(frozen=True)
class UnitWeight:
    """Every device's aggregation weight becomes 1 (DP-FedAvg: a device's contribution to the
    sum is its clipped update alone, so the sum's L2 sensitivity to one device is C)."""

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        return replace(deltas, weight=np.ones_like(deltas.weight))


def _by_device(deltas: DeviceDeltas) -> list[np.ndarray]:
    """Per device, the positions of its entries."""
    order = np.argsort(deltas.row_device, kind="stable")
    bounds = np.searchsorted(deltas.row_device[order], np.arange(deltas.num_devices + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(deltas.num_devices)]


def _untouched(deltas: DeviceDeltas, mine: np.ndarray, n_items: int) -> np.ndarray:
    """The items a device (its entries ``mine``) did not touch, ascending."""
    return np.setdiff1d(np.arange(n_items), deltas.row_item[mine])


def _append(
    deltas: DeviceDeltas, extra: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]
) -> DeviceDeltas:
    """``deltas`` plus extra entries (device, items, delta rows, kept rows)."""
    if not extra:
        return deltas
    return replace(
        deltas,
        row_device=np.concatenate(
            [deltas.row_device, *[np.full(i.size, k, np.int64) for k, i, _, _ in extra]]
        ),
        row_item=np.concatenate([deltas.row_item, *[i for _, i, _, _ in extra]]),
        delta=np.concatenate([deltas.delta, *[d for _, _, d, _ in extra]]),
        kept=np.concatenate([deltas.kept, *[b for _, _, _, b in extra]]),
    )


@dataclass(frozen=True)
class DecoyRows:
    """Decoy items (FedRec-style pseudo-interactions): besides its touched rows, each device
    uploads ``ratio`` rows per touched row for items it did not touch, sampled uniformly from
    its own stream; each carries a copy of one of the device's own row updates with a random
    sign, so that decoys look like the real rows (positives or negatives) to the server."""

    ratio: float
    n_items: int

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        extra = []
        for k, mine in enumerate(_by_device(deltas)):
            if mine.size == 0:
                continue
            free = _untouched(deltas, mine, self.n_items)
            count = min(round(self.ratio * mine.size), free.size)
            if count == 0:
                continue
            rng = rngs[k]
            items = np.sort(rng.choice(free, size=count, replace=False))
            source = mine[rng.integers(0, mine.size, size=count)]
            sign = rng.choice(np.array([-1.0, 1.0], np.float32), size=count)
            extra.append((k, items, deltas.delta[source] * sign[:, None], deltas.kept[source]))
        return _append(deltas, extra)


@dataclass(frozen=True)
class DenseUpload:
    """Each device uploads every item row (zero updates where it trained nothing), so that the
    set of uploaded rows reveals nothing; the values still do unless masked or noised."""

    n_items: int

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        extra = []
        for k, mine in enumerate(_by_device(deltas)):
            if mine.size == 0:
                continue
            items = _untouched(deltas, mine, self.n_items)
            kept = np.broadcast_to(
                deltas.kept[mine].max(axis=0), (items.size, deltas.kept.shape[1])
            )
            zero = np.zeros((items.size, deltas.delta.shape[1]), np.float32)
            extra.append((k, items, zero, np.ascontiguousarray(kept)))
        return _append(deltas, extra)


@dataclass(frozen=True)
class LocalNoise:
    """Local DP: each device adds N(0, std^2) to every value it uploads (the blocks it holds),
    from its own random stream, after clipping and dense padding."""

    std: float

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        delta = deltas.delta.copy()
        width = delta.shape[1] // deltas.kept.shape[1]
        for k, mine in enumerate(_by_device(deltas)):
            if mine.size == 0:
                continue
            noise = rngs[k].normal(0.0, self.std, size=(mine.size, delta.shape[1]))
            held = np.repeat(deltas.kept[mine] > 0, width, axis=1)
            delta[mine] += (noise * held).astype(np.float32)
        return replace(deltas, delta=delta)


@dataclass(frozen=True)
class UpdatePipeline:
    """The device-side steps, in order (empty: the update goes as it is), the secure
    aggregation the devices run on the dense vectors they report (None: off), and under the
    count's DP noise the most distinct items a device reports (0: its whole histogram)."""

    steps: tuple[UpdateStep, ...] = ()
    secure: SecAggParams | None = None
    count_items: int = 0

    def apply(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        for step in self.steps:
            deltas = step(deltas, rngs)
        return deltas

    def with_clip(self, clip: float) -> UpdatePipeline:
        """The pipeline clipping at ``clip`` (a train request's adaptive C; 0: as it is)."""
        if clip <= 0:
            return self
        steps = tuple(ClipUpdate(clip) if isinstance(s, ClipUpdate) else s for s in self.steps)
        return replace(self, steps=steps)


@dataclass(frozen=True)
class UpdateStepKind:
    """A registered kind of update step: ``build(options, n_items)`` makes the step from an
    instance of ``options`` (a frozen dataclass; None: it takes none) and the catalogue's size.
    The step travels to every worker inside ``HostSettings``: a frozen (hashable, picklable)
    dataclass of a module the workers import, as fedrule's own are."""

    build: Callable[[Any, int], UpdateStep]
    options: type | None = None


@dataclass(frozen=True)
class ClipOptions:
    max_norm: float = doc("(float) the L2 norm C a device's whole update is clipped to")


@dataclass(frozen=True)
class DecoyOptions:
    ratio: float = doc("(float) decoy rows a device uploads per row it touched")


@dataclass(frozen=True)
class NoiseOptions:
    std: float = doc("(float) the standard deviation of the noise on every uploaded value")


def build_step(name: str, options: dict[str, Any], n_items: int, path: str) -> UpdateStep:
    """The step registered as ``name`` with the (plain) ``options`` (errors at ``path``)."""
    kind = cast(UpdateStepKind, UPDATE_STEPS.get(name, path=path))
    plain = plugin_options(kind, options, path, name)
    return kind.build(options_from(kind, plain), n_items)


def privacy_pipeline(privacy: PrivacyConfig, n_items: int, mode: str = "full") -> UpdatePipeline:
    """The device-side steps a scenario's ``privacy`` section asks for, in order: unit weights
    (central DP), decoy rows, clipping (of the whole update, decoys included), dense padding,
    local noise, then ``privacy.update_steps``."""
    if mode != "full" and (privacy.decoys > 0 or privacy.dense):
        raise ConfigError(
            "decoys and dense uploads need federated.mode: full (a decoy or padded row would "
            "carry blocks its item's group does not hold)",
            path="privacy.decoys" if privacy.decoys > 0 else "privacy.dense",
        )
    named: list[tuple[str, dict[str, Any], str]] = []
    if privacy.central_dp:
        named.append(("unit-weight", {}, "privacy.noise_multiplier"))
    if privacy.decoys > 0:
        named.append(("decoys", {"ratio": privacy.decoys}, "privacy.decoys"))
    if privacy.clip > 0:
        named.append(("clip", {"max_norm": privacy.clip}, "privacy.clip"))
    if privacy.dense:
        named.append(("dense", {}, "privacy.dense"))
    if privacy.local_noise_multiplier > 0:
        std = privacy.local_noise_multiplier * privacy.clip
        named.append(("local-noise", {"std": std}, "privacy.local_noise_multiplier"))
    for i, name in enumerate(privacy.update_steps):
        options = privacy.update_step_options.get(name, {})
        named.append((name, options, f"privacy.update_steps[{i}]"))
    steps = tuple(build_step(name, options, n_items, path) for name, options, path in named)
    count_items = privacy.count_max_items if privacy.count_noise_multiplier > 0 else 0
    return UpdatePipeline(steps, secure=params_of(privacy), count_items=count_items)


for _name, _kind in (
    ("unit-weight", UpdateStepKind(lambda options, n_items: UnitWeight())),
    ("decoys", UpdateStepKind(lambda o, n_items: DecoyRows(o.ratio, n_items), DecoyOptions)),
    ("clip", UpdateStepKind(lambda options, n_items: ClipUpdate(options.max_norm), ClipOptions)),
    ("dense", UpdateStepKind(lambda options, n_items: DenseUpload(n_items))),
    ("local-noise", UpdateStepKind(lambda options, n_items: LocalNoise(options.std), NoiseOptions)),
):
    UPDATE_STEPS.register(_name, _kind)


@dataclass
class CohortUpdate:
    """Example-weighted sums over a cohort's devices, per item row they touched.

    ``sum_wdelta[r] = sum_k w_k * delta_k[r]`` and ``sum_w[r, b] = sum_k w_k`` over the devices k
    that updated block b of item ``rows[r]`` (w_k = the device's weight). ``bytes_up`` is what
    the cohort's devices uploaded in all (each touched row: its kept blocks and a 4-byte id).
    """

    rows: np.ndarray
    sum_wdelta: np.ndarray
    sum_w: np.ndarray
    bytes_up: int
    loss_sum: float = 0.0
    loss_count: float = 0.0
    clip_below: int = 0  # devices whose update norm was <= C before clipping


def distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for non-negative ids: by marking instead of
    sorting when the ids' range is small against their number (a sort otherwise)."""
    if keys.size == 0:
        return keys.astype(np.int64), np.zeros(keys.shape, np.int64)
    top = int(keys.max()) + 1
    if top > 8 * keys.size + 4096:
        uniq, inverse = np.unique(keys, return_inverse=True)
        return uniq, inverse.reshape(keys.shape)
    seen = np.zeros(top, dtype=bool)
    seen[keys] = True
    position = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen), position[keys]


_SUM_CHUNK = 4096


def sum_cohort(deltas: DeviceDeltas, bytes_per_block: int) -> CohortUpdate:
    """Add the (already processed) updates of a cohort's devices, weighted by their weights."""
    items, inverse = distinct(deltas.row_item)
    index = torch.from_numpy(inverse)
    w = torch.from_numpy(deltas.weight[deltas.row_device][:, None])
    delta, kept = torch.from_numpy(deltas.delta), torch.from_numpy(deltas.kept)
    sum_wdelta = torch.zeros(items.size, delta.shape[1], dtype=torch.float64)
    sum_w = torch.zeros(items.size, kept.shape[1], dtype=torch.float64)
    # in float64 (a device's share does not depend on how devices are packed), a chunk of rows
    # at a time: the chunk's float64 copy stays in cache (5x faster than one whole copy)
    for start in range(0, index.numel(), _SUM_CHUNK):
        part = slice(start, start + _SUM_CHUNK)
        sum_wdelta.index_add_(0, index[part], delta[part].double().mul_(w[part]))
        sum_w.index_add_(0, index[part], kept[part].double().mul_(w[part]))
    bytes_up = int(deltas.kept.sum() * bytes_per_block + 4 * deltas.row_item.size)
    below = 0 if deltas.below_clip is None else int(deltas.below_clip.sum())
    return CohortUpdate(items, sum_wdelta.numpy(), sum_w.numpy(), bytes_up, clip_below=below)
