"""Every set of names in ``fedrule.names``: the schema types its key with it, and every name is
implemented by its module, each differently (none falls through to another's code)."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
import torch

from fedrule import names
from fedrule.errors import ConfigError
from fedrule.scenario import schema


def _choices(section: type, key: str) -> tuple[str, ...]:
    """The names a schema key accepts (its ``Literal``'s, or its list items')."""
    tp = typing.get_type_hints(section)[key]
    if typing.get_origin(tp) is list:
        (tp,) = typing.get_args(tp)
    assert typing.get_origin(tp) is typing.Literal, f"{section.__name__}.{key} is no Literal"
    return typing.get_args(tp)


@pytest.mark.parametrize(
    ("section", "key", "listed"),
    [
        (schema.DataConfig, "source", names.DATA_SOURCES),
        (schema.DataConfig, "split", names.SPLIT_METHODS),
        (schema.TrainConfig, "sampling", names.SAMPLINGS),
        (schema.SearchConfig, "searcher", names.SEARCHER_NAMES),
        (schema.SearchConfig, "compare", names.SEARCHER_NAMES),
        (schema.ReferencesConfig, "baselines", names.BASELINES),
        (schema.FederatedConfig, "lr_schedule", names.LR_SCHEDULES),
        (schema.FaultsConfig, "phases", names.FAULT_PHASES),
        (schema.PrivacyConfig, "accountant", names.ACCOUNTANTS),
    ],
)
def test_the_schema_reads_each_list(section, key, listed):
    assert _choices(section, key) == listed


def test_every_default_of_a_named_key_is_one_of_its_names():
    """Defaults do not go through validation: a default outside its list would run unchecked."""

    def sections(cls: type):
        yield cls
        for f in dataclasses.fields(cls):
            inner = typing.get_type_hints(cls)[f.name]
            inner = (
                (typing.get_args(inner) or (inner,))[0]
                if typing.get_origin(inner) is list
                else inner
            )
            if dataclasses.is_dataclass(inner):
                yield from sections(inner)

    checked = 0
    for cls in set(sections(schema.Scenario)):
        instance = cls() if all(_has_default(f) for f in dataclasses.fields(cls)) else None
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            is_list = typing.get_origin(tp) is list
            tp = typing.get_args(tp)[0] if is_list else tp
            if instance is None or typing.get_origin(tp) is not typing.Literal:
                continue
            value = getattr(instance, f.name)
            assert set(value if is_list else [value]) <= set(typing.get_args(tp)), f.name
            checked += 1
    assert checked >= 12


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def test_every_split_method_splits_differently():
    from fedrule.data import generate_synthetic, split_data

    data = generate_synthetic(n_users=30, n_items=40, interactions_per_user=12.0, seed=0)
    tests = {m: split_data(data, m).test.counts().tolist() for m in names.SPLIT_METHODS}
    assert len({tuple(t) for t in tests.values()}) == len(names.SPLIT_METHODS)
    with pytest.raises(Exception, match="split"):
        split_data(data, "kfold")


def test_every_sampling_draws_its_own_sub_configurations():
    from fedrule.model.elastic import ElasticLayout
    from fedrule.model.supernet import sample_subconfigs

    layout = ElasticLayout(8, 4, np.repeat(np.arange(4), 5), min_blocks=0)
    drawn = {s: sample_subconfigs(layout, s, np.random.default_rng(0), 20) for s in names.SAMPLINGS}
    shapes = {s: d.shape[1] for s, d in drawn.items()}
    assert shapes == {"sandwich": 2, "popular": 2, "random": 2, "none": 0}
    sampled = [d.tobytes() for s, d in drawn.items() if s != "none"]
    assert len(set(sampled)) == len(sampled)
    with pytest.raises(ValueError, match="sampling"):
        sample_subconfigs(layout, "all", np.random.default_rng(0), 1)


def test_every_local_optimizer_steps_differently():
    """Local optimizers are registered (``fedrule.registry.LOCAL_OPTIMIZERS``), not listed."""
    from fedrule.device.local_optimizer import make_local_optimizer
    from fedrule.device.local_spec import LocalSpec
    from fedrule.registry import LOCAL_OPTIMIZERS

    grad = torch.tensor([[3.0, 0.5]])
    moved = {}
    own = LOCAL_OPTIMIZERS.own_names()
    assert own == ("adam", "rowwise-adam", "sgd")
    for name in own:
        spec = LocalSpec(1, 1, 0.1, 1, 0.0, 0.0, "none", optimizer=name)
        local = torch.zeros(1, 2)
        owner, touches = torch.zeros(1, dtype=torch.long), torch.tensor([0])
        opt = make_local_optimizer(spec, local, torch.zeros(1, 2), owner, None, touches)
        opt.step(torch.tensor([0]), grad, torch.tensor([0]), torch.zeros(1, 2))
        moved[name] = tuple(local[0].tolist())
    assert len(set(moved.values())) == len(own)
    with pytest.raises(ConfigError, match="unknown local optimizer 'rmsprop'"):
        LocalSpec(1, 1, 0.1, 1, 0.0, 0.0, "none", optimizer="rmsprop")


def test_every_lr_schedule_is_its_own_curve():
    from fedrule.model.schedule import LrSchedule

    curves = {
        kind: tuple(LrSchedule(kind, 0.1, 5).factor(r) for r in range(1, 6))
        for kind in names.LR_SCHEDULES
    }
    assert len(set(curves.values())) == len(names.LR_SCHEDULES)
    with pytest.raises(ValueError, match="schedule"):
        LrSchedule("step", 0.1, 5)


def test_every_server_optimizer_is_built_and_others_are_refused():
    """Server optimizers are registered (``fedrule.registry.SERVER_OPTIMIZERS``), not listed."""
    from fedrule.algorithm.server_step import make_server_step
    from fedrule.registry import SERVER_OPTIMIZERS

    own = SERVER_OPTIMIZERS.own_names()
    assert own == ("fedavg", "fedavgm", "fedadam", "fedyogi")
    steps = {n: make_server_step(schema.FederatedConfig(server_optimizer=n)) for n in own}
    assert len({repr(step) for step in steps.values()}) == len(own)  # fedadam/fedyogi: rule
    with pytest.raises(ConfigError, match="unknown server optimizer 'fedprox'"):
        make_server_step(schema.FederatedConfig(server_optimizer="fedprox"))


def test_every_accountant_is_dp_accountings_own():
    from fedrule.privacy.accounting import local_epsilon

    eps = {kind: local_epsilon(1.0, 10, 1e-5, kind) for kind in names.ACCOUNTANTS}
    assert all(e > 0 for e in eps.values())
    assert len(set(eps.values())) == len(names.ACCOUNTANTS)  # two methods, two bounds
    with pytest.raises(ValueError, match="accountant"):
        local_epsilon(1.0, 10, 1e-5, "moments")


def test_every_fault_phase_hits_its_own_message_kind():
    from fedrule.protocol import FAULT_KINDS, KIND_NUMBERS, Kind

    assert tuple(FAULT_KINDS) == names.FAULT_PHASES
    assert len(set(FAULT_KINDS.values())) == len(names.FAULT_PHASES)
    assert Kind.COUNT not in FAULT_KINDS.values()  # the count is never faulted
    # the streams' numbers of the kinds (recorded runs depend on them)
    assert KIND_NUMBERS == {Kind.COUNT: 0, Kind.TRAIN: 1, Kind.LABEL: 2, Kind.TEST: 3}
