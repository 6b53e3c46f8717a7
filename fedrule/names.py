"""Every set of names that a scenario key takes and a module above the schema implements.

Each set is spelled once, here: a ``Literal`` that the schema types its key with (so
``fedrule validate`` rejects a misspelled name with a did-you-mean hint, and ``--explain`` lists
the choices) and its tuple, which the implementing module dispatches on or builds its registry
from (``tests/test_names.py`` checks that every name is implemented). The sets cannot live
beside their implementations: the schema (layer L1) imports nothing above it, and every
implementation (data, model, search, privacy, device, algorithm, engine) sits above it. They
live in this layer-L0 module rather than in the schema so that an implementation reads its
names without importing the scenario package. Keys whose choices only the schema's own checks
and single comparisons read (``federated.mode``, ``search.verify_on``, ...) keep their
``Literal`` in the schema.

The kinds a package may extend are not listed here but registered (``fedrule.registry``):
federated methods, item codecs, server and local optimizers, update steps and leakage attacks.
Their names are the registry's, filled by the implementing modules and by entry points.
"""

from __future__ import annotations

from typing import Literal, get_args

DataSource = Literal["ml-100k", "ml-1m", "grouplens", "csv", "synthetic"]
DATA_SOURCES: tuple[str, ...] = get_args(DataSource)
"""``data.source``: the datasets ``fedrule.data.sources.load_dataset`` loads."""

SplitMethod = Literal["loo", "ratio"]
SPLIT_METHODS: tuple[str, ...] = get_args(SplitMethod)
"""``data.split``: the splits of ``fedrule.data.split.split_data``."""

Sampling = Literal["sandwich", "popular", "random", "none"]
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
"""``train.sampling``: the sub-configurations a step trains (``fedrule.model.supernet``)."""

Searcher = Literal["evolution", "greedy", "uniform", "random"]
SEARCHER_NAMES: tuple[str, ...] = get_args(Searcher)
"""``search.searcher``, ``search.compare`` and ``fedrule search --searcher``: the searchers of
``fedrule.search.searchers.SEARCHERS``, in this order."""

Baseline = Literal["full", "hashing", "qr", "popularity"]
BASELINES: tuple[str, ...] = get_args(Baseline)
"""``references.baselines``: centralised tables at equal bytes (``fedrule.engine.baselines``)."""

LrScheduleName = Literal["constant", "linear", "cosine"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrScheduleName)
"""``federated.lr_schedule``: ``fedrule.model.schedule.LrSchedule``."""

FaultPhase = Literal["train", "label", "test"]
FAULT_PHASES: tuple[str, ...] = get_args(FaultPhase)
"""``faults.phases``: the phases a fault may hit; ``fedrule.protocol.FAULT_KINDS`` maps each to
the message kind it stands for."""

Accountant = Literal["rdp", "pld"]
ACCOUNTANTS: tuple[str, ...] = get_args(Accountant)
"""``privacy.accountant``: dp-accounting's accountants (``fedrule.privacy.accounting``)."""
