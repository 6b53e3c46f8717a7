"""The scenario schema: every key, its type, its default and its meaning, in one place.

``scenarios/*.yaml`` files are checked against these frozen dataclasses (unknown keys and wrong
types are errors naming the dotted path). ``fedrule validate --explain`` prints this as a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fedrule.distributions import parse_distribution
from fedrule.names import (
    DATA_SOURCES,
    FAULT_PHASES,
    SEARCHER_NAMES,
    Accountant,
    Baseline,
    DataSource,
    FaultPhase,
    LrScheduleName,
    Sampling,
    Searcher,
    SplitMethod,
)
from fedrule.registry import (
    ATTACKS,
    CODECS,
    LOCAL_OPTIMIZERS,
    METHODS,
    SERVER_OPTIMIZERS,
    UPDATE_STEPS,
)
from fedrule.scenario.validate import doc, require
from fedrule.units import Budget, parse_budget

Metric = str  # "ndcg@20", "recall@10", "hit@50" (checked in EvalConfig.check)

# Upper bounds of counts and waits whose huge values mean "runs until stopped" (rounds:
# 1000000000 was accepted and ran until killed). Each key's documentation names its bound.
MAX_ROUNDS = 100_000
"""federated.rounds (a round of the ML-1M fleet takes seconds to minutes)."""
MAX_EPOCHS = 100_000
"""train.epochs and estimator.epochs."""
MAX_LOCAL_EPOCHS = 1_000
"""federated.local_epochs and federated.personalize_epochs (per round, on every device)."""
MAX_NEGATIVES = 1_000
"""train.negatives (each positive scores this many items per step)."""
MAX_CONFIGS = 100_000
"""estimator.configs (each one is evaluated on the labelling users or devices)."""
MAX_POPULATION = 100_000
"""search.population."""
MAX_CYCLES = 1_000_000
"""search.cycles."""
MAX_SAMPLES = 10_000_000
"""search.samples."""
MAX_WAIT_SECONDS = 7 * 24 * 3600.0
"""engine.round_timeout and engine.connect_timeout: a week (.inf waited forever)."""


def _at_most(value: float, bound: float, path: str) -> None:
    require(value <= bound, f"must be <= {bound:,.0f}", path=path)


@dataclass(frozen=True)
class CsvColumns:
    sep: str | None = doc(
        "(str|null) column separator: ',', ';', '|', tab (or \\t); null: sniffed from the file "
        "(tab, ',', ';', '|', '::', space)",
        None,
    )
    header: bool | None = doc(
        "(bool|null) the first line holds column names; null: sniffed (yes when columns are named)",
        None,
    )
    user: str | int = doc("(str|int) user column: a name (needs header) or a 0-based position", 0)
    item: str | int = doc("(str|int) item column: a name (needs header) or a 0-based position", 1)
    rating: str | int | None = doc("(str|int|null) rating column, if any", None)
    timestamp: str | int | None = doc("(str|int|null) timestamp column, if any (integers)", None)


@dataclass(frozen=True)
class SyntheticData:
    users: int = doc("(int) number of users", 2000)
    items: int = doc("(int) number of items", 1000)
    interactions_per_user: float = doc("(float) mean interactions per user", 30.0)
    popularity_exponent: float = doc("(float) Zipf exponent of item popularity", 1.0)
    activity_exponent: float = doc("(float) spread of user activity (heavier tail if larger)", 1.5)

    def check(self, path: str) -> None:
        require(self.users >= 1, "must be >= 1", path=f"{path}.users")
        require(self.items >= 2, "must be >= 2", path=f"{path}.items")
        require(
            self.interactions_per_user >= 3, "must be >= 3", path=f"{path}.interactions_per_user"
        )


@dataclass(frozen=True)
class DataConfig:
    source: DataSource = doc(
        f"({'|'.join(DATA_SOURCES)}) the dataset: MovieLens 100K or 1M (fetched once), a "
        "GroupLens or csv file at data.path, or a seeded synthetic log (data.synthetic)",
        "ml-100k",
    )
    path: str | None = doc("(str|null) file for grouplens (zip, u.data, ratings.dat) or csv", None)
    data_dir: str | None = doc(
        "(str|null) cache folder; default $FEDRULE_DATA_DIR or ~/.cache/fedrule", None
    )
    rating_threshold: float | None = doc(
        "(float|null) ratings >= this are positives; null: all", None
    )
    min_user_interactions: int = doc("(int) k-core: drop users with fewer interactions", 0)
    min_item_interactions: int = doc("(int) k-core: drop items with fewer interactions", 0)
    split: SplitMethod = doc("(loo|ratio) leave-one-out by time, or per-user ratio", "loo")
    ratios: list[float] = doc("(list) train/valid/test shares for split: ratio", [0.8, 0.1, 0.1])
    split_seed: int = doc(
        "(int) seed of the per-user shuffle that orders interactions without timestamps (the "
        "same test set whatever the run's seeds)",
        0,
    )
    min_interactions_to_evaluate: int = doc(
        "(int) users with fewer interactions only train and are not evaluated (counted in the "
        "log and metrics.json); 2 evaluates 2-interaction users on their test item (RecBole)",
        3,
    )
    csv: CsvColumns = doc("columns of a csv source", CsvColumns)
    synthetic: SyntheticData = doc("generator settings for source: synthetic", SyntheticData)

    def check(self, path: str) -> None:
        require(
            len(self.ratios) == 3 and all(r >= 0 for r in self.ratios),
            "expected three non-negative shares [train, valid, test]",
            path=f"{path}.ratios",
        )
        require(abs(sum(self.ratios) - 1.0) < 1e-6, "shares must sum to 1", path=f"{path}.ratios")
        require(
            self.min_interactions_to_evaluate >= 2,
            "must be >= 2 (a user needs a train and a test interaction)",
            path=f"{path}.min_interactions_to_evaluate",
        )
        if self.source in ("grouplens", "csv"):
            require(
                self.path is not None, f"source {self.source} needs a file", path=f"{path}.path"
            )


@dataclass(frozen=True)
class ModelConfig:
    dim: int = doc("(int) full embedding dimension d", 64)
    blocks: int = doc("(int) B: column blocks per item embedding (d must divide by B)", 32)
    groups: int = doc("(int) G: item groups by training popularity; 0 means one group per item", 16)
    grouping: Literal["mass", "count"] = doc(
        "(mass|count) groups of equal interaction mass, or of equal item count", "mass"
    )
    min_blocks_per_group: int = doc("(int) blocks every group keeps (0: items may score zero)", 1)
    rescale: bool = doc("(bool) scale kept blocks by B/|kept| when blocks are dropped", False)
    precision: Literal["float32", "float16"] = doc("(float32|float16) stored value type", "float32")
    init_std: float = doc("(float) std of the normal initialisation of embeddings", 0.1)

    def check(self, path: str) -> None:
        require(self.dim >= 1, "must be >= 1", path=f"{path}.dim")
        require(self.blocks >= 1, "must be >= 1", path=f"{path}.blocks")
        require(
            self.dim % self.blocks == 0,
            f"dim {self.dim} is not divisible by blocks {self.blocks}",
            path=f"{path}.blocks",
        )
        require(self.groups >= 0, "must be >= 0", path=f"{path}.groups")
        require(
            0 <= self.min_blocks_per_group <= self.blocks,
            f"must lie in [0, blocks={self.blocks}]",
            path=f"{path}.min_blocks_per_group",
        )

    @property
    def bytes_per_value(self) -> int:
        return 4 if self.precision == "float32" else 2


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = doc("(int) centralised: maximum training epochs (at most 100,000)", 60)
    lr: float = doc("(float) centralised: learning rate (federated: federated.local_lr)", 0.005)
    optimizer: Literal["adam", "sgd", "adagrad"] = doc(
        "(adam|sgd|adagrad) centralised optimizer", "adam"
    )
    batch_size: int = doc("(int) centralised: positives per step", 4096)
    negatives: int = doc("(int) sampled negatives per positive (BPR; at most 1,000)", 1)
    negative_exponent: float = doc(
        "(float) negatives drawn in proportion to item popularity ** this (centralised: "
        "(train count + 1); on devices: estimated from the received layout, 1 / the item's "
        "group size); 0: uniform; 0.5-1: popular items are drawn more often as negatives, "
        "which lifts tail items in the ranking",
        0.0,
    )
    l2: float = doc("(float) L2 penalty on the embeddings used in a batch", 1e-5)
    patience: int = doc(
        "(int) centralised: stop after this many evaluations without gain; 0: never", 5
    )
    eval_every: int = doc("(int) centralised: validate every this many epochs", 2)
    sampling: Sampling = doc(
        "(sandwich|popular|random|none) sub-configurations trained each step besides the full "
        "one: the smallest and a random one (sandwich), the smallest and one with blocks per "
        "group in proportion to popularity at a random size (popular), two random ones; none "
        "trains a plain BPR-MF",
        "sandwich",
    )
    lambda_div: float = doc("(float) weight of the block-diversity regulariser; 0 disables", 0.01)
    compile: bool = doc(
        "(bool) run the training kernels through torch.compile (centralised and on devices): "
        "about 3x faster steps after a compilation of 10-30 s per process; numbers differ from "
        "an uncompiled run in the last bits (a compiled run is reproducible from its seed)",
        False,
    )

    def check(self, path: str) -> None:
        for key in ("epochs", "batch_size", "negatives", "eval_every"):
            require(getattr(self, key) >= 1, "must be >= 1", path=f"{path}.{key}")
        _at_most(self.epochs, MAX_EPOCHS, f"{path}.epochs")
        _at_most(self.negatives, MAX_NEGATIVES, f"{path}.negatives")
        require(self.lr > 0, "must be > 0", path=f"{path}.lr")
        require(self.l2 >= 0, "must be >= 0", path=f"{path}.l2")
        require(self.lambda_div >= 0, "must be >= 0", path=f"{path}.lambda_div")
        require(self.patience >= 0, "must be >= 0", path=f"{path}.patience")
        require(
            0 <= self.negative_exponent <= 2, "must lie in [0, 2]", path=f"{path}.negative_exponent"
        )


@dataclass(frozen=True)
class EvalConfig:
    ks: list[int] = doc("(list) cut-offs K for Recall/NDCG/HitRate@K", [10, 20, 50])
    head_share: float = doc(
        "(float) head items: the most popular ones holding this share of training interactions",
        0.5,
    )
    metric: Metric = doc("(str) model-selection metric, e.g. ndcg@20", "ndcg@20")
    batch_users: int = doc("(int) centralised: users scored per batch in evaluation", 1024)
    every_device: bool = doc(
        "(bool) federated rule: also test every budget's searched configuration on every "
        "device (a measurement, as centralised RULE is tested on every user; tiers.csv "
        "column <metric>_every_device)",
        False,
    )

    def check(self, path: str) -> None:
        require(
            len(self.ks) > 0 and all(k >= 1 for k in self.ks),
            "expected a non-empty list of positive K",
            path=f"{path}.ks",
        )
        require(0 < self.head_share < 1, "must lie in (0, 1)", path=f"{path}.head_share")
        name, _, k = self.metric.partition("@")
        require(
            name in ("ndcg", "recall", "hit") and k.isdigit() and int(k) in self.ks,
            f"expected ndcg@K, recall@K or hit@K with K in ks {self.ks}",
            path=f"{path}.metric",
        )
        require(self.batch_users >= 1, "must be >= 1", path=f"{path}.batch_users")


@dataclass(frozen=True)
class EstimatorConfig:
    configs: int = doc(
        "(int) configurations labelled by real validation quality (at most 100,000)", 300
    )
    holdout: float = doc("(float) share of labelled configurations held out for Spearman", 0.2)
    hidden: list[int] = doc("(list) hidden layer sizes of the MLP estimator", [128, 128])
    epochs: int = doc("(int) estimator training epochs (at most 100,000)", 300)
    lr: float = doc("(float) estimator learning rate", 0.001)
    label_users: int = doc(
        "(int) users (devices, when federated) whose validation items label configurations; 0: all",
        0,
    )

    def check(self, path: str) -> None:
        require(self.configs >= 10, "must be >= 10", path=f"{path}.configs")
        _at_most(self.configs, MAX_CONFIGS, f"{path}.configs")
        _at_most(self.epochs, MAX_EPOCHS, f"{path}.epochs")
        require(0 < self.holdout < 1, "must lie in (0, 1)", path=f"{path}.holdout")
        require(
            len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
            "expected a list of positive sizes",
            path=f"{path}.hidden",
        )
        require(self.epochs >= 1, "must be >= 1", path=f"{path}.epochs")
        require(self.lr > 0, "must be > 0", path=f"{path}.lr")
        require(self.label_users >= 0, "must be >= 0", path=f"{path}.label_users")


@dataclass(frozen=True)
class SearchConfig:
    searcher: Searcher = doc(f"({'|'.join(SEARCHER_NAMES)}) searcher used for devices", "evolution")
    budgets: list[Budget] = doc(
        "(list) budgets evaluated by a centralised RULE run (bytes, 256KiB, or shares like 1/16)",
        [],
    )
    compare: list[Searcher] = doc(
        "(list) centralised: further searchers reported at every budget", []
    )
    population: int = doc("(int) evolution: population size P (at most 100,000)", 20)
    tournament: int = doc("(int) evolution: tournament size S", 5)
    cycles: int = doc("(int) evolution: cycles C (at most 1,000,000)", 300)
    samples: int = doc("(int) random: feasible configurations tried (at most 10,000,000)", 1000)
    tail_weight: float = doc(
        "(float) in [0, 1]: the estimator's labels and the search maximise "
        "(1 - w) * eval.metric + w * tail/eval.metric (tail: items outside eval.head_share); "
        "0: overall quality only",
        0.0,
    )

    verify: bool = doc(
        "(bool) measure each budget's searched configuration, its largest uniform one and its "
        "popularity fit on validation items (federated: one more labelling, by the devices "
        "search.verify_on names; centralised: every user's) and use the best measured candidate "
        "that fits: "
        "guards against the estimator's over-predictions",
        True,
    )
    verify_on: Literal["held-out", "labelling"] = doc(
        "(held-out|labelling) federated: which devices verify. held-out: those that did not "
        "label, when they are at least as many as estimator.label_users (else the labelling "
        "ones), so the choice is measured on items the estimator never saw; labelling: the "
        "labelling devices, on the validation items the estimator was fitted to",
        "held-out",
    )
    verify_per_budget: bool = doc(
        "(bool) federated: measure each budget's candidates on the verifying devices of that "
        "budget only, each device refitting its user vector to each candidate as a dispatched "
        "test does (budgeted mode: a device's user vector knows the blocks its tier trained)",
        False,
    )
    verify_users: int = doc(
        "(int) federated: the most devices that verify, a seeded sample of those "
        "search.verify_on names (a full-ranking evaluation per device and candidate: on a "
        "fleet of 100,000 devices, verifying on all of them took longer than the rest of the "
        "run); 0: all of them",
        10_000,
    )

    def check(self, path: str) -> None:
        require(self.population >= 2, "must be >= 2", path=f"{path}.population")
        require(self.verify_users >= 0, "must be >= 0", path=f"{path}.verify_users")
        require(0 <= self.tail_weight <= 1, "must lie in [0, 1]", path=f"{path}.tail_weight")
        require(
            self.verify or self.verify_on == "held-out",
            "has no effect with search.verify: false",
            path=f"{path}.verify_on",
        )
        require(
            self.verify or not self.verify_per_budget,
            "has no effect with search.verify: false",
            path=f"{path}.verify_per_budget",
        )
        require(
            1 <= self.tournament <= self.population,
            "must lie in [1, population]",
            path=f"{path}.tournament",
        )
        require(self.cycles >= 0, "must be >= 0", path=f"{path}.cycles")
        require(self.samples >= 1, "must be >= 1", path=f"{path}.samples")
        _at_most(self.population, MAX_POPULATION, f"{path}.population")
        _at_most(self.cycles, MAX_CYCLES, f"{path}.cycles")
        _at_most(self.samples, MAX_SAMPLES, f"{path}.samples")


@dataclass(frozen=True)
class ReferencesConfig:
    plain: bool = doc(
        "(bool) also train plain BPR-MF and search its configurations (what the supernet buys)",
        False,
    )
    retrained: bool = doc(
        "(bool) also train BPR-MF at the dimension of equal memory for each budget", False
    )
    baselines: list[Baseline] = doc(
        "(list) item-table formats at equal bytes, one row per budget: full (plain BPR-MF "
        "truncated to a uniform prefix of blocks: method full-prefix), hashing (R hashed rows "
        "of d), qr (quotient-remainder tables, product), popularity (the ranking, no model)",
        [],
    )


# ---------------------------------------------------------------------- device systems
# Speeds, bandwidths, latency and availability over simulated time, and the round policies that
# use them (fedrule.systems, docs/systems.md). Kept in one block: per-tier quantities
# (TierConfig), the fleet's systems section (fleet.systems) and federated.round_policy.

SYSTEMS_QUANTITY_DOCS = {
    "examples_per_second": "training examples a device processes per second (one example: a "
    "positive with its negatives, once)",
    "download_mbps": "download bandwidth in Mbit/s (10^6 bits per second)",
    "upload_mbps": "upload bandwidth in Mbit/s",
    "latency_s": "seconds of latency per message exchange",
}
_QUANTITY_TYPE = (
    "(number|{lognormal: {median, sigma}}|{uniform: {low, high}}|{normal: {mean, std, min}}|null)"
)


def _quantity_doc(name: str) -> str:
    return (
        f"{_QUANTITY_TYPE} {SYSTEMS_QUANTITY_DOCS[name]}: a number, or a distribution drawn "
        "from each device's own stream (docs/systems.md); null: costs no time"
    )


def check_quantity(value: object, path: str, *, rate: bool) -> None:
    """A per-device quantity: a number or a known distribution whose values are > 0 (speeds,
    bandwidths) or >= 0 (latency); a one-line error naming the key otherwise."""
    if value is None:
        return
    dist = parse_distribution(value, path)
    if rate:
        require(
            dist.positive,
            f"must be > 0 (its values divide work), got values down to {dist.lower_bound:g}",
            path=path,
            hint="a number > 0, or a distribution above 0 (normal: set min > 0)",
        )
    else:
        require(dist.lower_bound >= 0, "must be >= 0 (seconds)", path=path)


AvailabilityModel = Literal["always", "daily", "charging", "intervals", "fedscale"]
AVAILABILITY_MODELS: tuple[str, ...] = get_args(AvailabilityModel)
ProfileSource = Literal["tiers", "trace", "fedscale"]
PROFILE_SOURCES: tuple[str, ...] = get_args(ProfileSource)


@dataclass(frozen=True)
class AvailabilityConfig:
    model: AvailabilityModel = doc(
        "(always|daily|charging|intervals|fedscale) when devices are online in simulated time: "
        "always; daily: hours_per_day hours every period_h hours from a per-device random phase; "
        "charging: hours_per_day hours from start_h, each device's start shifted by up to "
        "spread_h / 2 either way; intervals: the windows of file (CSV or JSON rows device_id, "
        "start_s, end_s); fedscale: FedScale's behaviour trace (file, a pickle)",
        "always",
    )
    hours_per_day: float = doc("(float) daily, charging: online hours in each period", 8.0)
    period_h: float = doc("(float) daily, charging: hours between a device's windows", 24.0)
    start_h: float = doc("(float) charging: hour of the period at which windows start", 22.0)
    spread_h: float = doc(
        "(float) charging: width in hours of the uniform spread of the devices' start times", 2.0
    )
    file: str | None = doc(
        "(str|null) intervals: a .csv or .json file of device_id (a user id), start_s, end_s "
        "rows (devices without rows are never online); fedscale: its client_behave_trace pickle",
        None,
    )

    def check(self, path: str) -> None:
        require(self.period_h > 0, "must be > 0", path=f"{path}.period_h")
        require(
            0 < self.hours_per_day <= self.period_h,
            f"must lie in (0, period_h = {self.period_h:g}]",
            path=f"{path}.hours_per_day",
        )
        require(
            0 <= self.start_h < self.period_h,
            f"must lie in [0, period_h = {self.period_h:g})",
            path=f"{path}.start_h",
        )
        require(
            0 <= self.spread_h <= self.period_h,
            f"must lie in [0, period_h = {self.period_h:g}]",
            path=f"{path}.spread_h",
        )
        needs_file = self.model in ("intervals", "fedscale")
        require(
            not needs_file or self.file is not None,
            f"model {self.model} needs a file",
            path=f"{path}.file",
        )
        require(
            needs_file or self.file is None,
            f"has no effect with model: {self.model}",
            path=f"{path}.file",
            hint="model: intervals or fedscale reads it",
        )


@dataclass(frozen=True)
class SystemsConfig:
    source: ProfileSource = doc(
        "(tiers|trace|fedscale) where speeds, bandwidths and latencies come from: the tiers' "
        "keys (fleet.tiers[].examples_per_second, ...); trace: the columns of the same names "
        "in fleet.trace (the tiers' keys where a column or cell is missing); fedscale: "
        "FedScale's device-capacity pickle (fedscale_capacity), with latency_s from the tiers",
        "tiers",
    )
    fedscale_capacity: str | None = doc(
        "(str|null) source fedscale: FedScale's client_device_capacity pickle ({client_id: "
        "{computation: ms per sample, communication: kbit/s}})",
        None,
    )
    fedscale_augmentation: float = doc(
        "(float) source fedscale: training one example costs this many times FedScale's "
        "'computation' (its inference latency per sample); FedScale's own factor is 3",
        3.0,
    )
    availability: AvailabilityConfig = doc(
        "when devices are online in simulated time", AvailabilityConfig
    )

    def check(self, path: str) -> None:
        require(
            self.source == "fedscale" or self.fedscale_capacity is None,
            f"has no effect with source: {self.source}",
            path=f"{path}.fedscale_capacity",
            hint="set fleet.systems.source: fedscale",
        )
        require(
            self.source != "fedscale" or self.fedscale_capacity is not None,
            "source fedscale needs FedScale's device-capacity pickle",
            path=f"{path}.fedscale_capacity",
        )
        require(self.fedscale_augmentation > 0, "must be > 0", path=f"{path}.fedscale_augmentation")


RoundPolicyKind = Literal["sync", "deadline", "overcommit", "async"]
ROUND_POLICIES: tuple[str, ...] = get_args(RoundPolicyKind)
Staleness = Literal["inverse-sqrt", "constant"]
STALENESS_FUNCTIONS: tuple[str, ...] = get_args(Staleness)


@dataclass(frozen=True)
class RoundPolicyConfig:
    kind: RoundPolicyKind = doc(
        "(sync|deadline|overcommit|async) how a round ends on the simulated clock: sync waits "
        "for every sampled device; deadline drops the devices later than deadline_s; "
        "overcommit samples ceil((1 + overcommit) K) and keeps the first K to finish "
        "(FedScale); async is FedBuff's buffered asynchronous aggregation (concurrency, "
        "buffer, staleness, max_staleness). Only devices online at the clock are sampled",
        "sync",
    )
    deadline_s: float = doc(
        "(float) deadline: the most simulated seconds a round lasts (> 0); devices that would "
        "finish later are dropped and counted as late",
        0.0,
    )
    overcommit: float = doc(
        "(float) overcommit: o, the share of extra devices sampled (FedScale's default "
        "overcommitment 1.3 is o = 0.3)",
        0.3,
    )
    concurrency: int = doc(
        "(int) async: the most devices training at once (FedScale's max_concurrency default 10)",
        10,
    )
    buffer: int = doc("(int) async: the server steps every this many arrived updates", 10)
    max_staleness: int = doc(
        "(int) async: an update computed on a table more than this many server steps old is "
        "dropped (FedScale's default 5)",
        5,
    )
    staleness: Staleness = doc(
        "(inverse-sqrt|constant) async: the weight of an update s server steps old: "
        "1 / sqrt(1 + s) (FedBuff), or 1",
        "inverse-sqrt",
    )

    def check(self, path: str) -> None:
        require(self.deadline_s >= 0, "must be >= 0", path=f"{path}.deadline_s")
        require(
            self.kind != "deadline" or self.deadline_s > 0,
            "must be > 0 with kind: deadline",
            path=f"{path}.deadline_s",
        )
        require(
            self.kind == "deadline" or self.deadline_s == 0,
            f"has no effect with kind: {self.kind}",
            path=f"{path}.deadline_s",
            hint="set federated.round_policy.kind: deadline",
        )
        require(self.overcommit > 0, "must be > 0", path=f"{path}.overcommit")
        require(self.concurrency >= 1, "must be >= 1", path=f"{path}.concurrency")
        require(self.buffer >= 1, "must be >= 1", path=f"{path}.buffer")
        require(self.max_staleness >= 0, "must be >= 0", path=f"{path}.max_staleness")


def _check_tier_systems(tier: TierConfig, path: str) -> None:
    for name in SYSTEMS_QUANTITY_DOCS:
        check_quantity(getattr(tier, name), f"{path}.{name}", rate=name != "latency_s")


@dataclass(frozen=True)
class TierConfig:
    name: str = doc("(str) tier name, e.g. watch, phone, tv")
    share: float = doc("(float) share of the fleet in this tier (shares sum to 1)")
    budget: Budget = doc("(bytes|share) item-table memory budget of the tier's devices")
    availability: float = doc("(float) probability that a device answers in a round", 1.0)
    examples_per_second: Any = doc(_quantity_doc("examples_per_second"), None)
    download_mbps: Any = doc(_quantity_doc("download_mbps"), None)
    upload_mbps: Any = doc(_quantity_doc("upload_mbps"), None)
    latency_s: Any = doc(_quantity_doc("latency_s"), None)

    def check(self, path: str) -> None:
        require(0 < self.share <= 1, "must lie in (0, 1]", path=f"{path}.share")
        require(0 <= self.availability <= 1, "must lie in [0, 1]", path=f"{path}.availability")
        _check_tier_systems(self, path)


def _default_tiers() -> list[TierConfig]:
    return [
        TierConfig("low", 0.4, parse_budget("1/16"), 1.0),
        TierConfig("mid", 0.4, parse_budget("1/4"), 1.0),
        TierConfig("high", 0.2, parse_budget(1), 1.0),
    ]


@dataclass(frozen=True)
class FleetConfig:
    num_devices: int = doc("(int) devices (users sampled with the first seed); 0: every user", 0)
    tiers: list[TierConfig] = field(
        default_factory=_default_tiers,
        metadata={"doc": "(list) tiers {name, share, budget, availability}; used unless trace"},
    )
    trace: str | None = doc(
        "(str|null) CSV with one row per device: device_id (a user id), budget, optional tier "
        "(one of tiers' names, when given) and availability",
        None,
    )
    failure_rate: float = doc("(float) probability that an answering device fails mid-round", 0.0)
    systems: SystemsConfig = doc(
        "devices' speeds, bandwidths, latency and availability over simulated time",
        SystemsConfig,
    )

    def check(self, path: str) -> None:
        require(
            self.systems.source != "trace" or self.trace is not None,
            "source trace reads the columns of fleet.trace: set fleet.trace",
            path=f"{path}.systems.source",
        )
        require(self.num_devices >= 0, "must be >= 0", path=f"{path}.num_devices")
        require(0 <= self.failure_rate < 1, "must lie in [0, 1)", path=f"{path}.failure_rate")
        if self.trace is None:
            require(len(self.tiers) >= 1, "expected at least one tier", path=f"{path}.tiers")
            total = sum(t.share for t in self.tiers)
            require(
                abs(total - 1.0) < 1e-6,
                f"tier shares sum to {total:g}, expected 1",
                path=f"{path}.tiers",
            )
        names = [t.name for t in self.tiers]
        require(len(set(names)) == len(names), "tier names repeat", path=f"{path}.tiers")


@dataclass(frozen=True)
class EngineConfig:
    kind: Literal["centralized", "federated"] = doc(
        "(centralized|federated) one trainer with all data, or a Flower fleet on Ray; when "
        "the file leaves it out: federated if the file has a fleet: or federated: section "
        "(--set overrides of those keys do not count), else centralized",
        "centralized",
    )
    transport: Literal["flower", "inprocess"] = doc(
        "(flower|inprocess) federated runs: Flower's simulation engine on Ray (the product path), "
        "or the same device code called in this process (debugging; no Ray)",
        "flower",
    )
    devices_per_node: int = doc(
        "(int) the most devices one message (one Flower node's cohort) carries", 64
    )
    messages_per_worker: int = doc(
        "(int) a phase packs its devices into about this many messages per Ray worker, "
        "balanced by their interaction counts (more: better balance, more overhead)",
        2,
    )
    cpus_per_node: int = doc("(int) CPUs of a Ray worker (torch threads); workers = CPUs / this", 1)
    num_cpus: int = doc(
        "(int) CPUs Ray may use on this machine; centralised runs: torch threads; 0: all cores", 0
    )
    ray_address: str | None = doc(
        "(str|null) join this Ray cluster (host:port, or 'auto'); default $RAY_ADDRESS, else a "
        "private local Ray",
        None,
    )
    round_timeout: float = doc(
        "(float) seconds to wait for the replies of one round (at most a week, 604,800)", 600.0
    )
    checkpoint_every: int = doc(
        "(int) federated runs: checkpoint every this many rounds into the partial run folder "
        "(fedrule run --resume continues a killed run); 0: never",
        1,
    )
    store_dir: str | None = doc(
        "(str|null) folder for the devices' data and state during a federated run; on a "
        "multi-machine Ray cluster a shared folder every worker sees; null: the system temp "
        "folder ($TMPDIR)",
        None,
    )
    connect_timeout: float = doc(
        "(float) seconds to wait for the Ray cluster at engine.ray_address to answer (at most a "
        "week)",
        30.0,
    )

    def check(self, path: str) -> None:
        require(self.devices_per_node >= 1, "must be >= 1", path=f"{path}.devices_per_node")
        require(self.messages_per_worker >= 1, "must be >= 1", path=f"{path}.messages_per_worker")
        require(self.cpus_per_node >= 1, "must be >= 1", path=f"{path}.cpus_per_node")
        require(self.num_cpus >= 0, "must be >= 0", path=f"{path}.num_cpus")
        require(self.round_timeout > 0, "must be > 0", path=f"{path}.round_timeout")
        require(self.checkpoint_every >= 0, "must be >= 0", path=f"{path}.checkpoint_every")
        require(self.connect_timeout > 0, "must be > 0", path=f"{path}.connect_timeout")
        _at_most(self.round_timeout, MAX_WAIT_SECONDS, f"{path}.round_timeout")
        _at_most(self.connect_timeout, MAX_WAIT_SECONDS, f"{path}.connect_timeout")


@dataclass(frozen=True)
class FederatedConfig:
    method: str = doc(
        "(str) a registered method (docs/architecture.md: a new method is one file). "
        "rule: the elastic supernet, "
        "the estimator and a search per budget (RULE). The baselines, in the same rounds, "
        "protocol and byte accounting: nested (HeteroFL-style nested slicing): one table, every "
        "device trains and receives the largest uniform prefix of blocks (the first d_t columns) "
        "that fits its budget, each block averaged over the devices that hold it; per-tier: one "
        "table per tier, trained from scratch by that tier's devices only at the largest uniform "
        "prefix that fits the tier's smallest budget, dispatched to them; full-prefix: every "
        "device trains the full table, then receives its largest uniform prefix that fits (the "
        "naive deployment); hashing / qr: one hashed (R rows of d) or quotient-remainder table "
        "per tier, the largest that fits the tier's smallest budget, trained by the tier's "
        "devices; popularity: no model, every device receives the counted popularity ranking "
        "(rounds are not run). All train plain BPR (no sub-configurations, no diversity term) "
        "and skip labelling and search, so refit_every, estimator.* (but label_users: "
        "validation devices) and search.* are RULE's alone, and mode must be full",
        "rule",
        registry=METHODS,
    )
    method_options: dict[str, Any] = doc(
        "(mapping) the options of a plug-in method, checked against its options dataclass "
        "(fedrule's own take none)",
        {},
        options_of="method",
    )
    mode: Literal["full", "budgeted"] = doc(
        "(full|budgeted) devices train the whole supernet, or only blocks that fit their budget",
        "full",
    )
    rounds: int = doc("(int) supernet training rounds (at most 100,000)", 20)
    devices_per_round: float = doc(
        "(float) devices sampled per round: a share of the fleet (<= 1) or a count (> 1)", 0.1
    )
    local_epochs: int = doc(
        "(int) local epochs over a device's training items per round (at most 1,000)", 1
    )
    local_batch_size: int = doc("(int) a device's minibatch size", 32)
    local_optimizer: str = doc(
        "(str) a device's optimizer, fresh every round: a registered local optimizer. adam: "
        "lazy, per touched row, so its first step moves every touched entry by local_lr; "
        "rowwise-adam: one second moment per item row (as row-wise Adagrad for embedding "
        "tables), so a row's blocks keep their relative step sizes and the sub-configurations "
        "stay nested (docs/results); sgd: plain SGD",
        "adam",
        registry=LOCAL_OPTIMIZERS,
    )
    local_optimizer_options: dict[str, Any] = doc(
        "(mapping) the options of a plug-in local optimizer (fedrule's own take none)",
        {},
        options_of="local_optimizer",
    )
    local_lr: float = doc("(float) a device's learning rate", 0.01)
    lr_schedule: LrScheduleName = doc(
        "(constant|linear|cosine) a device's learning rate over the rounds: local_lr throughout, "
        "or falling from local_lr at round 1 to local_lr * lr_final at the last round",
        "constant",
    )
    lr_final: float | None = doc(
        "(float) linear/cosine: the last round's learning rate as a share of local_lr (0.1 if "
        "not given); an error with lr_schedule constant, where it would change nothing",
        None,
    )
    server_lr: float = doc(
        "(float) server learning rate applied to the averaged update (fedadam/fedyogi: about "
        "0.01-0.1)",
        1.0,
    )
    server_optimizer: str = doc(
        "(str) the server's step on the averaged update, entry-wise on the entries devices "
        "updated: a registered server optimizer (fedrule's own: Reddi et al. 2021, set by the "
        "server_* keys)",
        "fedavg",
        registry=SERVER_OPTIMIZERS,
    )
    server_optimizer_options: dict[str, Any] = doc(
        "(mapping) the options of a plug-in server optimizer (fedrule's own take none: "
        "server_lr, server_momentum, server_beta2, server_tau)",
        {},
        options_of="server_optimizer",
    )
    server_momentum: float = doc(
        "(float) fedavgm: momentum; fedadam/fedyogi: beta1 of the first moment", 0.9
    )
    server_beta2: float = doc("(float) fedadam/fedyogi: beta2 of the second moment", 0.99)
    server_tau: float = doc("(float) fedadam/fedyogi: adaptivity tau (sqrt(v) + tau)", 1e-3)
    eval_every: int = doc(
        "(int) every this many rounds, the labelling devices report validation quality; 0: never",
        0,
    )
    patience: int = doc(
        "(int) stop training after this many validations (eval_every) without a gain; 0: run "
        "every round. Whenever rounds are validated, the best validated round's table is kept",
        0,
    )
    personalize_epochs: int = doc(
        "(int) before being evaluated, a device fits its user vector to the item table it holds "
        "for this many local epochs (items fixed; at most 1,000); 0: never",
        1,
    )
    personalize_lr: float | None = doc(
        "(float|null) the learning rate of that fit; null: federated.local_lr. The fit starts a "
        "fresh optimizer, whose first Adam steps move every entry by about this much",
        None,
    )
    refit_every: int = doc(
        "(int) budgeted mode: relabel and refit the estimator every this many rounds, so devices "
        "train the blocks searched for their budget (start_config before); 0: never",
        0,
    )
    start_config: Literal["uniform", "popularity"] = doc(
        "(uniform|popularity) budgeted mode: what a budget's devices train before the first "
        "estimator (throughout with refit_every 0). uniform: the largest uniform configuration "
        "that fits; popularity: blocks per item group in proportion to the mean popularity of "
        "its items (the counted popularity), as mixed-dimension embeddings, so the popular "
        "groups the search favours are trained from the first round. Verification "
        "(search.verify) measures it beside the searched and uniform configurations",
        "uniform",
    )
    round_policy: RoundPolicyConfig = doc(
        "how rounds end on the simulated clock (fleet.systems: speeds, bandwidths, availability)",
        RoundPolicyConfig,
    )

    def check(self, path: str) -> None:
        require(self.rounds >= 0, "must be >= 0", path=f"{path}.rounds")
        _at_most(self.rounds, MAX_ROUNDS, f"{path}.rounds")
        _at_most(self.local_epochs, MAX_LOCAL_EPOCHS, f"{path}.local_epochs")
        _at_most(self.personalize_epochs, MAX_LOCAL_EPOCHS, f"{path}.personalize_epochs")
        require(self.devices_per_round > 0, "must be > 0", path=f"{path}.devices_per_round")
        require(
            self.devices_per_round <= 1 or float(self.devices_per_round).is_integer(),
            "a count above 1 must be whole",
            path=f"{path}.devices_per_round",
        )
        require(self.local_epochs >= 1, "must be >= 1", path=f"{path}.local_epochs")
        require(self.local_batch_size >= 1, "must be >= 1", path=f"{path}.local_batch_size")
        require(self.local_lr > 0, "must be > 0", path=f"{path}.local_lr")
        if self.lr_final is not None:
            require(0 < self.lr_final <= 1, "must lie in (0, 1]", path=f"{path}.lr_final")
            require(
                self.lr_schedule != "constant",
                "has no effect with lr_schedule: constant",
                path=f"{path}.lr_final",
                hint="set federated.lr_schedule: linear or cosine",
            )
        require(self.server_lr > 0, "must be > 0", path=f"{path}.server_lr")
        require(0 <= self.server_momentum < 1, "must be in [0, 1)", path=f"{path}.server_momentum")
        require(0 <= self.server_beta2 < 1, "must be in [0, 1)", path=f"{path}.server_beta2")
        require(self.server_tau > 0, "must be > 0", path=f"{path}.server_tau")
        require(self.eval_every >= 0, "must be >= 0", path=f"{path}.eval_every")
        require(self.patience >= 0, "must be >= 0", path=f"{path}.patience")
        require(
            not self.patience or self.eval_every,
            "needs validation rounds: set federated.eval_every",
            path=f"{path}.patience",
        )
        require(self.refit_every >= 0, "must be >= 0", path=f"{path}.refit_every")
        require(
            self.start_config == "uniform" or self.mode == "budgeted",
            "only RULE's budgeted mode trains a start configuration",
            path=f"{path}.start_config",
            hint="set federated.mode: budgeted, or leave start_config at uniform",
        )
        require(self.personalize_epochs >= 0, "must be >= 0", path=f"{path}.personalize_epochs")
        if self.personalize_lr is not None:
            require(self.personalize_lr > 0, "must be > 0", path=f"{path}.personalize_lr")
            require(
                self.personalize_epochs > 0,
                "has no effect with personalize_epochs: 0",
                path=f"{path}.personalize_lr",
                hint="set federated.personalize_epochs >= 1",
            )


@dataclass(frozen=True)
class FaultsConfig:
    crash: float = doc(
        "(float) probability that a device crashes in a phase and sends nothing (per device, "
        "phase and round, from its own random stream)",
        0.0,
    )
    straggler: float = doc("(float) probability that a device is a straggler in a phase", 0.0)
    straggler_delay: float = doc(
        "(float) mean extra seconds a straggler takes (exponential; simulated time)", 30.0
    )
    deadline: float = doc(
        "(float) a phase's deadline in simulated seconds: stragglers later than it are dropped "
        "and count as late; 0: the server waits for them",
        0.0,
    )
    message_loss: float = doc(
        "(float) probability that a message (a cohort's request or reply) is lost: its "
        "devices count as failed",
        0.0,
    )
    worker_crash: float = doc(
        "(float) probability that the worker process handling a message dies (Flower: the Ray "
        "worker exits and Ray restarts it; in-process: the node fails); its devices count as "
        "failed",
        0.0,
    )
    phases: list[FaultPhase] = doc(
        "(list) the phases faults apply to: train, label (estimator labels and validation), "
        "test (dispatch)",
        list(FAULT_PHASES),
    )

    def check(self, path: str) -> None:
        for name in ("crash", "straggler", "message_loss", "worker_crash"):
            value = getattr(self, name)
            require(0 <= value < 1, "must be in [0, 1)", path=f"{path}.{name}")
        require(self.straggler_delay > 0, "must be > 0", path=f"{path}.straggler_delay")
        require(self.deadline >= 0, "must be >= 0", path=f"{path}.deadline")


@dataclass(frozen=True)
class PrivacyConfig:
    clip: float = doc(
        "(float) C: each device clips its whole update to L2 norm C on the device, before any "
        "sum; 0: no clipping",
        0.0,
    )
    noise_multiplier: float = doc(
        "(float) sigma > 0 turns on client-level central DP (DP-FedAvg; needs clip): Poisson "
        "sampling of devices, unit device weights, a fixed denominator (the expected number of "
        "sampled devices) and Gaussian noise sigma*C on every entry a device could have touched",
        0.0,
    )
    target_epsilon: float | None = doc(
        "(float|null) solve sigma before training so that epsilon after federated.rounds "
        "rounds is this (overrides noise_multiplier; needs clip)",
        None,
    )
    delta: float | None = doc("(float|null) the DP delta; null: 1 / number of devices", None)
    accountant: Accountant = doc(
        "(rdp|pld) dp-accounting's Renyi-DP or privacy-loss-distribution accountant", "rdp"
    )
    audit: bool = doc(
        "(bool) every round, attack what the server received (privacy.attacks) and score it: "
        "audit_<attack>_* columns of rounds-seed*.csv; after dispatch, the test-rank attack on "
        "the test reports: audit_test in metrics.json; with engine.devices_per_node: 1 the "
        "figures are per device",
        False,
    )
    attacks: list[str] = doc(
        "(list) the attacks of the leakage audit, registered leakage attacks: count "
        "(membership from the popularity count), touched (every uploaded row), norm (rows by "
        "update norm), svd (label-free singular vector), imia (IMIA-style shadow replay)",
        ["count", "touched", "norm", "svd", "imia"],
        registry=ATTACKS,
    )
    attack_options: dict[str, dict[str, Any]] = doc(
        "(mapping) per attack of privacy.attacks, its options (imia: iterations, the "
        "relabelling rounds of each replay, 10)",
        {},
        options_of="attacks",
    )
    decoys: float = doc(
        "(float) decoy items: a device also uploads this many rows per row it touched, for "
        "items it did not touch, each a copy of one of its own row updates with a random sign",
        0.0,
    )
    dense: bool = doc(
        "(bool) a device uploads every row it holds (zero updates where it trained nothing)",
        False,
    )
    local_noise_multiplier: float = doc(
        "(float) sigma_L > 0 turns on local DP (the no-trust comparison): each device adds "
        "N(0, (sigma_L C)^2) to every entry of its clipped, dense upload; needs clip and dense; "
        "each device's own epsilon (worst case: in every round) is the local_epsilon column",
        0.0,
    )
    secure_aggregation: bool = doc(
        "(bool) secure aggregation (SecAgg: X25519 pairwise masks mod 2^64, Shamir dropout "
        "recovery) of the popularity histograms and the label sums: the server receives each "
        "device's masked vector and learns only the sum over a request's devices",
        False,
    )
    min_cohort: int = doc(
        "(int) under secure_aggregation, the fewest devices whose sum may be revealed: devices "
        "refuse and the run aborts when a request names, or keeps after dropouts, fewer",
        5,
    )
    secagg_neighbors: int = doc(
        "(int) under secure_aggregation, how many other devices each device masks with and "
        "shares its seeds among (SecAgg+ ring); 0: every device of the request (SecAgg)",
        0,
    )
    clip_quantile: float | None = doc(
        "(float|null) adaptive clipping (Andrew et al. 2021): the target share gamma of devices "
        "whose update norm is <= C; privacy.clip is the initial C, and after every round "
        "C <- C exp(-clip_lr (noised share below - gamma)); null: C stays privacy.clip",
        None,
    )
    clip_lr: float = doc("(float) adaptive clipping: the geometric step size of C", 0.2)
    clip_count_stddev: float = doc(
        "(float) adaptive clipping: sigma_b, the server's noise on the summed 'norm <= C' bits; "
        "0: the paper's default, the expected number of devices per round / 20",
        0.0,
    )
    count_noise_multiplier: float = doc(
        "(float) > 0: Gaussian noise on the popularity count, counted in epsilon (needs "
        "central DP): each device reports each of its items at most once and at most "
        "count_max_items of them, and the server adds N(0, (this sqrt(count_max_items))^2) to "
        "every item's total",
        0.0,
    )
    count_max_items: int = doc(
        "(int) under count_noise_multiplier, the most distinct items a device reports (a "
        "uniform sample of its own when it has more)",
        100,
    )
    label_noise_multiplier: float = doc(
        "(float) > 0: Gaussian noise on every labelling's and validation's metric sums, "
        "counted in epsilon (needs central DP): each device adds values in [0, 1] per "
        "configuration and metric plus a 0/1 count per metric, and the server adds "
        "N(0, (this sqrt(metrics (configurations + 1)))^2) to every sum and count",
        0.0,
    )
    update_steps: list[str] = doc(
        "(list) further device-side steps on each device's own update, registered update "
        "steps run in this order after fedrule's (unit weights, decoys, clipping, dense "
        "padding, local noise) and before the cohort's sum; outside the DP accounting, so not "
        "with central or local DP",
        [],
        registry=UPDATE_STEPS,
    )
    update_step_options: dict[str, dict[str, Any]] = doc(
        "(mapping) per step of privacy.update_steps, its options (clip: max_norm; decoys: "
        "ratio; local-noise: std)",
        {},
        options_of="update_steps",
    )

    @property
    def central_dp(self) -> bool:
        return self.noise_multiplier > 0 or self.target_epsilon is not None

    def check(self, path: str) -> None:
        require(self.clip >= 0, "must be >= 0", path=f"{path}.clip")
        require(self.noise_multiplier >= 0, "must be >= 0", path=f"{path}.noise_multiplier")
        if self.target_epsilon is not None:
            require(self.target_epsilon > 0, "must be > 0", path=f"{path}.target_epsilon")
        if self.delta is not None:
            require(0 < self.delta < 1, "must lie in (0, 1)", path=f"{path}.delta")
        require(
            not self.central_dp or self.clip > 0,
            "central DP needs a clipping norm: set privacy.clip",
            path=f"{path}.clip",
        )
        require(self.decoys >= 0, "must be >= 0", path=f"{path}.decoys")
        require(
            self.local_noise_multiplier >= 0, "must be >= 0", path=f"{path}.local_noise_multiplier"
        )
        require(
            not self.local_noise_multiplier or (self.clip > 0 and self.dense),
            "local DP needs privacy.clip and privacy.dense (the set of uploaded rows must not "
            "reveal anything either)",
            path=f"{path}.local_noise_multiplier",
        )
        require(self.min_cohort >= 2, "must be >= 2", path=f"{path}.min_cohort")
        require(self.secagg_neighbors >= 0, "must be >= 0", path=f"{path}.secagg_neighbors")
        require(
            self.secagg_neighbors == 0 or self.secagg_neighbors >= 2,
            "must be 0 (every device) or >= 2",
            path=f"{path}.secagg_neighbors",
        )
        self._check_adaptive_and_noise(path)
        require(
            not self.update_steps or not (self.central_dp or self.local_noise_multiplier),
            "run after clipping, outside what epsilon accounts for: not with central or local DP",
            path=f"{path}.update_steps",
        )

    def _check_adaptive_and_noise(self, path: str) -> None:
        if self.clip_quantile is not None:
            require(0 < self.clip_quantile < 1, "must lie in (0, 1)", path=f"{path}.clip_quantile")
            require(
                self.clip > 0,
                "adaptive clipping needs an initial privacy.clip > 0",
                path=f"{path}.clip",
            )
            require(
                not self.local_noise_multiplier,
                "adaptive clipping and local DP do not combine (local noise follows a fixed C)",
                path=f"{path}.clip_quantile",
            )
        require(self.clip_lr > 0, "must be > 0", path=f"{path}.clip_lr")
        require(self.clip_count_stddev >= 0, "must be >= 0", path=f"{path}.clip_count_stddev")
        require(self.count_max_items >= 1, "must be >= 1", path=f"{path}.count_max_items")
        for key in ("count_noise_multiplier", "label_noise_multiplier"):
            value = getattr(self, key)
            require(value >= 0, "must be >= 0", path=f"{path}.{key}")
            require(
                not value or self.central_dp,
                "needs central DP (privacy.noise_multiplier or privacy.target_epsilon): epsilon "
                "would not cover the training uploads",
                path=f"{path}.{key}",
            )


@dataclass(frozen=True)
class Scenario:
    name: str = doc("(str) run name, used in the run folder name", "scenario")
    seeds: list[int] = doc("(list) one run per seed; tables give mean and spread", [0])
    data: DataConfig = doc("the dataset, its filtering and its split", DataConfig)
    model: ModelConfig = doc("the (elastic) matrix-factorisation model", ModelConfig)
    train: TrainConfig = doc("training of the model", TrainConfig)
    eval: EvalConfig = doc("the evaluation protocol", EvalConfig)
    estimator: EstimatorConfig = doc("the performance estimator of configurations", EstimatorConfig)
    search: SearchConfig = doc("searching a configuration under a memory budget", SearchConfig)
    references: ReferencesConfig = doc(
        "centralised: baselines trained in the same run", ReferencesConfig
    )
    engine: EngineConfig = doc("where the run executes", EngineConfig)
    fleet: FleetConfig = doc("the devices of a federated run and their budgets", FleetConfig)
    federated: FederatedConfig = doc("federated supernet training", FederatedConfig)
    faults: FaultsConfig = doc("injected faults of a federated run", FaultsConfig)
    privacy: PrivacyConfig = doc(
        "federated: differential privacy, upload mitigations, leakage audit", PrivacyConfig
    )

    def check(self, path: str) -> None:
        require(len(self.seeds) >= 1, "expected at least one seed", path="seeds")
        require(len(set(self.seeds)) == len(self.seeds), "seeds repeat", path="seeds")
        require(
            all(0 <= seed < 2**32 for seed in self.seeds),
            "seeds must be whole numbers in [0, 2**32)",
            path="seeds",
        )
        require(
            bool(_SAFE_NAME.fullmatch(self.name)),
            "expected 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-' "
            "(it names the run folder)",
            path="name",
        )
        require(
            self.engine.kind == "federated" or self.search.verify_on == "held-out",
            "chooses the verifying devices of a federated run: a centralised run verifies on "
            "every user's validation items",
            path="search.verify_on",
        )
        require(
            self.engine.kind == "federated" or not self.search.verify_per_budget,
            "splits the verifying devices of a federated run by budget: a centralised run "
            "verifies on every user's validation items",
            path="search.verify_per_budget",
        )
        # a registered name, its devices' format registered, and what that method can run
        # (fedrule.algorithm.methods)
        method = METHODS.get(self.federated.method)
        CODECS.get(method.codec_kind, path="federated.method")
        method.check(self)
        self._check_systems()

    def _check_systems(self) -> None:
        """Round policies that secure aggregation or central DP cannot follow (docs/systems.md)."""
        policy, privacy = self.federated.round_policy.kind, self.privacy
        require(
            policy != "async" or not (privacy.secure_aggregation or privacy.central_dp),
            "an asynchronous buffer sums updates of devices sampled at different times on "
            "different tables: neither a secure sum over one request's devices nor the DP "
            "accountant's Poisson rounds cover it",
            path="federated.round_policy.kind",
            hint="use sync or deadline with privacy.secure_aggregation or central DP",
        )
        require(
            policy != "overcommit" or not privacy.central_dp,
            "keeping the K fastest makes a device's inclusion depend on the other devices' "
            "data, which Poisson sampling's amplification (the accountant) does not allow",
            path="federated.round_policy.kind",
            hint="use sync or deadline with central DP",
        )


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")

__all__ = [
    "Budget",
    "CsvColumns",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "Scenario",
    "SyntheticData",
    "TrainConfig",
    "parse_budget",
]
