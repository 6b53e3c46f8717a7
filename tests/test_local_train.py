"""Batched local training: a cohort trains exactly like its devices one by one."""

import numpy as np
import pytest
import torch

from fedrule.device.cohort import Rows
from fedrule.device.local_spec import LocalSpec
from fedrule.device.local_train import train_cohort
from fedrule.errors import ConfigError
from fedrule.fleet import device_rng
from fedrule.model.elastic import ElasticLayout, make_groups


def _setup(num_devices=6, n_items=30, dim=8, blocks=4, rescale=False):
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 12, size=num_devices)
    items = np.concatenate([rng.choice(n_items, size=c, replace=False) for c in counts])
    rows = Rows(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), items)
    popularity = np.bincount(items, minlength=n_items)
    layout = ElasticLayout(dim, blocks, make_groups(popularity, 3), min_blocks=1, rescale=rescale)
    table = torch.randn(n_items, dim, generator=torch.Generator().manual_seed(1)) * 0.1
    users = torch.randn(num_devices, dim, generator=torch.Generator().manual_seed(2)) * 0.1
    return rows, layout, table, users


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rowwise-adam"])
@pytest.mark.parametrize("sampling", ["none", "sandwich", "popular"])
@pytest.mark.parametrize(("budgeted", "rescale"), [(False, False), (True, False), (True, True)])
def test_cohort_equals_devices_one_by_one(sampling, budgeted, rescale, optimizer):
    rows, layout, table, users = _setup(rescale=rescale)
    spec = LocalSpec(
        epochs=2,
        batch_size=4,
        lr=0.1,
        negatives=2,
        l2=1e-3,
        lambda_div=0.1,
        sampling=sampling,
        optimizer=optimizer,
    )
    n = rows.counts.size
    allowed = None
    if budgeted:
        allowed = np.stack([layout.random_config(np.random.default_rng(k)) for k in range(n)])
    together, u_together = train_cohort(
        table, users, rows, allowed, layout, spec, [device_rng(0, k, 1) for k in range(n)]
    )
    sum_wdelta = np.zeros((table.shape[0], table.shape[1]), np.float32)
    sum_w = np.zeros((table.shape[0], layout.num_blocks), np.float32)
    bytes_up = 0
    for k in range(n):
        one = rows.take(np.array([k]))
        alone, u_alone = train_cohort(
            table,
            users[k : k + 1],
            one,
            None if allowed is None else allowed[k : k + 1],
            layout,
            spec,
            [device_rng(0, k, 1)],
        )
        assert torch.allclose(u_alone[0], u_together[k], atol=1e-6)
        sum_wdelta[alone.rows] += alone.sum_wdelta
        sum_w[alone.rows] += alone.sum_w
        bytes_up += alone.bytes_up
    assert np.allclose(sum_wdelta[together.rows], together.sum_wdelta, atol=1e-6)
    assert np.allclose(sum_w[together.rows], together.sum_w)
    assert bytes_up == together.bytes_up
    if budgeted:  # nothing outside a device's allowed blocks moves
        block_of_col = np.arange(table.shape[1]) // layout.block_dim
        for r, item in enumerate(together.rows):
            untouched = sum_w[item] == 0
            assert np.all(together.sum_wdelta[r][untouched[block_of_col]] == 0)


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("sgd", 0.5), ("adam", 0.05), ("rowwise-adam", 0.05)]
)
def test_training_lowers_the_loss_of_a_device(optimizer, lr):
    rows, layout, table, users = _setup(num_devices=1)
    spec = LocalSpec(
        epochs=1,
        batch_size=64,
        lr=lr,
        negatives=4,
        l2=0.0,
        lambda_div=0.0,
        sampling="none",
        optimizer=optimizer,
    )
    first, u = train_cohort(table, users, rows, None, layout, spec, [device_rng(0, 0, 1)])
    new_table = table.clone()
    new_table[first.rows] += torch.from_numpy(first.sum_wdelta / first.sum_w.repeat(2, axis=1))
    second, _ = train_cohort(new_table, u, rows, None, layout, spec, [device_rng(0, 0, 1)])
    assert second.loss_sum < first.loss_sum


def test_local_spec_rejects_bad_values():
    good = dict(epochs=1, batch_size=4, lr=0.1, negatives=1, l2=0.0, lambda_div=0.0)
    with pytest.raises(ValueError, match="sampling"):
        LocalSpec(**good, sampling="all")
    with pytest.raises(ConfigError, match="unknown local optimizer"):
        LocalSpec(**good, sampling="none", optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size"):
        LocalSpec(**{**good, "batch_size": 0}, sampling="none")


def test_looked_up_diversity_of_untouched_rows_changes_nothing(monkeypatch):
    from fedrule.device import local_train as module

    rows, layout, table, users = _setup()
    spec = LocalSpec(
        epochs=3,
        batch_size=3,
        lr=0.05,
        negatives=3,
        l2=1e-3,
        lambda_div=0.5,
        sampling="sandwich",
        optimizer="adam",
    )
    n = rows.counts.size
    looked_up, u1 = train_cohort(
        table, users, rows, None, layout, spec, [device_rng(0, k, 1) for k in range(n)]
    )
    monkeypatch.setattr(module, "_known_diversity", lambda *args: None)
    computed, u2 = train_cohort(
        table, users, rows, None, layout, spec, [device_rng(0, k, 1) for k in range(n)]
    )
    assert np.allclose(looked_up.sum_wdelta, computed.sum_wdelta, atol=1e-6)
    assert torch.allclose(u1, u2, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_lazy_adam_equals_torch_sparse_adam(masked):
    """One device's rows, some stepped once (closed form), some again (kept moments), against
    ``torch.optim.SparseAdam`` on the same sparse gradients."""
    from fedrule.device.local_optimizer import make_local_optimizer

    gen = torch.Generator().manual_seed(3)
    start = torch.randn(8, 4, generator=gen)
    mask = (torch.rand(8, 4, generator=gen) > 0.3).float() if masked else None
    steps = [torch.tensor(r) for r in ([0, 1, 2], [1, 3], [4], [1, 2, 5], [6])]
    grads = [torch.randn(r.numel(), 4, generator=gen) for r in steps]
    spec = LocalSpec(1, 1, 0.05, 1, 0.0, 0.0, "none", optimizer="adam")
    local = start.clone() if mask is None else start * mask
    users = torch.zeros(1, 4)
    ours = make_local_optimizer(
        spec, local, users, torch.zeros(8, dtype=torch.long), mask, torch.cat(steps)
    )
    reference = torch.nn.Parameter(local.clone())
    sparse = torch.optim.SparseAdam([reference], lr=0.05)
    for rows, grad in zip(steps, grads, strict=True):
        ours.step(rows, grad, torch.tensor([0]), torch.zeros(1, 4))
        masked_grad = grad if mask is None else grad * mask[rows]
        reference.grad = torch.sparse_coo_tensor(
            rows[None], masked_grad, (8, 4), check_invariants=True
        )
        sparse.step()
    assert torch.allclose(local, reference.detach(), atol=1e-6)
    assert torch.equal(local[7], (start if mask is None else start * mask)[7])  # never stepped


def test_device_negatives_follow_the_popularity_estimated_from_the_layout():
    """Groups hold equal interaction mass, so an item of a group of one is estimated 3x as
    popular as each item of a group of three; with exponent 1 item 1 is drawn half the time.
    A device whose positive is item 0 redraws its clashes: it then draws items 1, 2, 3 in
    proportion 3 : 1 : 1."""
    from fedrule.device.local_plan import draw_schedules, negative_distribution

    layout = ElasticLayout(4, 2, np.array([1, 0, 1, 1]), min_blocks=1)
    assert negative_distribution(layout, 0.0) is None
    by = negative_distribution(layout, 1.0)
    assert np.allclose(by.cdf, np.cumsum([1, 3, 1, 1]) / 6)
    spec = LocalSpec(1, 32, 0.1, 60_000, 0.0, 0.0, "none", negative_exponent=1.0)
    train = Rows(np.array([0, 1]), np.array([0]))
    drawn = draw_schedules(train, np.array([0]), layout, spec, [np.random.default_rng(0)], 4).neg
    assert np.allclose(
        np.bincount(drawn.ravel(), minlength=4) / drawn.size, [0, 0.6, 0.2, 0.2], atol=0.01
    )


def test_rowwise_adam_by_hand():
    """Row-wise Adam keeps one second moment per row (the mean squared gradient entry):
    row 0 is stepped twice (kept moments), row 1 once (closed form); the user vector stays
    entry-wise."""
    from fedrule.device.local_optimizer import BETA1, BETA2, EPS, make_local_optimizer

    lr = 0.1
    spec = LocalSpec(1, 1, lr, 1, 0.0, 0.0, "none", optimizer="rowwise-adam")
    start = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    local, users = start.clone(), torch.zeros(1, 2)
    g1, g2 = torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    opt = make_local_optimizer(
        spec, local, users, torch.zeros(2, dtype=torch.long), None, torch.tensor([0, 1, 0])
    )
    opt.step(torch.tensor([0, 1]), g1, torch.tensor([0]), torch.tensor([[1.0, -2.0]]))
    # first step: lr * g / rms(g); rms of row 0 is sqrt((9 + 16) / 2), of row 1 sqrt(2)
    row0 = start[0] - lr * g1[0] / (12.5**0.5 + EPS)
    row1 = start[1] - lr * g1[1] / (2.0**0.5 + EPS)
    assert torch.allclose(local[1], row1, atol=1e-6)
    assert torch.allclose(users, torch.tensor([[-lr, lr]]), atol=1e-6)  # entry-wise: sign steps
    opt.step(torch.tensor([0]), g2, torch.tensor([0]), torch.tensor([[1.0, -2.0]]))
    m = BETA1 * (1 - BETA1) * g1[0] + (1 - BETA1) * g2[0]
    v = BETA2 * (1 - BETA2) * 12.5 + (1 - BETA2) * 1.0
    step = lr * (m / (1 - BETA1**2)) / ((v / (1 - BETA2**2)) ** 0.5 + EPS)
    assert torch.allclose(local[0], row0 - step, atol=1e-6)
    assert torch.allclose(local[1], row1, atol=1e-6)  # not stepped again


def test_rowwise_adam_keeps_relative_entry_sizes():
    """A row's first row-wise step is proportional to its gradient (entry-wise Adam's is the
    gradient's sign): a block that barely gets a gradient barely moves."""
    from fedrule.device.local_optimizer import make_local_optimizer

    grad = torch.tensor([[1.0, 1.0, 1e-3, 1e-3]])
    moved = {}
    for optimizer in ("adam", "rowwise-adam"):
        spec = LocalSpec(1, 1, 0.1, 1, 0.0, 0.0, "none", optimizer=optimizer)
        local = torch.zeros(1, 4)
        owner, touches = torch.zeros(1, dtype=torch.long), torch.tensor([0])
        opt = make_local_optimizer(spec, local, torch.zeros(1, 4), owner, None, touches)
        opt.step(torch.tensor([0]), grad, torch.tensor([0]), torch.zeros(1, 4))
        moved[optimizer] = -local[0]
    assert torch.allclose(moved["adam"], torch.full((4,), 0.1), atol=1e-6)
    ratio = moved["rowwise-adam"] / moved["rowwise-adam"][0]
    assert torch.allclose(ratio, grad[0], atol=1e-6)


def test_rowwise_adam_of_a_budgeted_row_averages_over_the_blocks_it_holds():
    """A budgeted device's row (two of four entries allowed) steps as a full row with the
    allowed entries' gradient would: the mean square is over the entries it may train."""
    from fedrule.device.local_optimizer import EPS, make_local_optimizer

    lr = 0.1
    spec = LocalSpec(1, 1, lr, 1, 0.0, 0.0, "none", optimizer="rowwise-adam")
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    local = torch.zeros(1, 4)
    owner, touches = torch.zeros(1, dtype=torch.long), torch.tensor([0])
    opt = make_local_optimizer(spec, local, torch.zeros(1, 4), owner, mask, touches)
    opt.step(
        torch.tensor([0]),
        torch.tensor([[3.0, 4.0, 7.0, 7.0]]),
        torch.tensor([0]),
        torch.zeros(1, 4),
    )
    expected = -lr * torch.tensor([3.0, 4.0, 0.0, 0.0]) / (12.5**0.5 + EPS)
    assert torch.allclose(local[0], expected, atol=1e-6)
