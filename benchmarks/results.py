"""Regenerate the results page, ``docs/results/README.md``, and README's headline table from real
runs.

Each study below is one or more ``fedrule`` commands (sweeps and runs) writing into
``runs/results/<study>/``, then ``fedrule report`` over that folder into ``docs/results/<study>/``
(tables and PNG plots). The results page is written from those reports: an index of the studies
with each one's finding (the ``finding`` of its definition below), then per study what was run,
its commands, its tables (made from the reports' CSV) and its plots, so that no number on it is
typed into the page by hand. README's block between ``headline:begin`` and ``headline:end`` is
made from one study's CSV the same way (``HEADLINE``).

A study whose folder already holds finished runs is not run again (sweeps resume; delete the
folder to start over). ``--only`` picks studies; ``--no-run`` runs nothing and rebuilds the
reports of the studies whose runs are here, then the pages (the run folders are not committed:
without them the pages are rebuilt from the committed ``docs/results/<study>/`` CSVs alone);
``--check`` writes nothing and exits with 1 if a page differs from what the CSVs give.

    python benchmarks/results.py                 # everything (about 6.5 hours on 2 cores)
    python benchmarks/results.py --only audit    # one study
    python benchmarks/results.py --no-run        # the pages from the committed CSVs
    python benchmarks/results.py --check         # are the committed pages current?
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from fedrule.report.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "results"
DOCS = ROOT / "docs" / "results"
PAGE = DOCS / "README.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- headline:begin -->", "<!-- headline:end -->"


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    finding: str  # one sentence: what the study found, shown in the index of studies
    what: str  # one paragraph: what was run and how to read it
    commands: tuple[str, ...]  # fedrule arguments; {out} is the study's run folder
    tables: tuple[str, ...]  # report tables (CSV) shown on the page
    plots: tuple[str, ...]  # report plots shown on the page
    only_all: bool = False  # show only the fleet's rows (tier "all"); the plots show tiers


DP = "--set privacy.clip=1 --set privacy.clip_quantile=0.5"
METHODS = shlex.quote(
    "federated.method,federated.mode=[rule,full],[rule,budgeted],[nested,full],[per-tier,full],"
    "[full-prefix,full],[hashing,full],[qr,full],[popularity,full]"
)
FIVE_TIERS = shlex.quote(
    "fleet.tiers=["
    + ", ".join(
        f"{{name: {name}, share: 0.2, budget: {budget}}}"
        for name, budget in [
            ("watch", "1/16"),
            ("budget-phone", "1/8"),
            ("phone", "1/4"),
            ("tablet", "1/2"),
            ("tv", "1"),
        ]
    )
    + "]"
)
# the studies run before the fleets' devices trained with rowwise-adam pin the entry-wise Adam
ENTRYWISE = "--set federated.local_optimizer=adam"
# the studies run before verification moved to held-out devices pin the labelling devices
LABELLING = "--set search.verify_on=labelling"
# and those run before the fleets sampled 2 negatives per positive pin 4
FOUR = "--set train.negatives=4"
# and those run before the ML-1M fleet evaluated with its stored user vectors pin the refit
REFIT = "--set federated.personalize_epochs=1"
# and the ML-1M fleet's studies run before its devices trained with plain SGD at rate 8 pin the
# rate of Adam (0.1), and row-wise Adam where they do not name an optimizer
ADAM_LR = "--set federated.local_lr=0.1"
ROWWISE = f"--set federated.local_optimizer=rowwise-adam {ADAM_LR}"
# and the fleets' studies run before their devices drew popularity-shaped sub-configurations pin
# the sandwich
SANDWICH = "--set train.sampling=sandwich"
# and the ML-1M fleet's studies run before it dropped the block-diversity regulariser pin it
# (with the sandwich, where they ran before that too)
DIVERSITY = "--set train.lambda_div=0.01"
FLEET_BEFORE = f"{SANDWICH} {DIVERSITY}"
# the baselines search nothing that eval.every_device could test, and the scenarios turn it on
# (ml1m-fleet.yaml, and quickstart.yaml since its tier table leads with it): the sweeps over
# federated.method leave it off
NO_EVERY_DEVICE = "--set eval.every_device=false"
STUDIES = (
    Study(
        "methods",
        "Federated methods at equal bytes (ML-100K, 3 seeds)",
        "RULE beats nested slicing and per-tier models at every tier of the quickstart: 0.0704 "
        "NDCG@20 over the fleet against 0.0537 and 0.0514.",
        "The quickstart fleet (943 devices; watch 1/16, phone 1/4, tv 1 of the full table; 120 "
        "rounds of half the fleet, the shipped defaults) trained by RULE (one elastic "
        "supernet, a searched sub-embedding per budget), `nested` "
        "(HeteroFL/FjORD-style: each tier trains and receives the first columns that fit) and "
        "`per-tier` (one model per tier, trained on that tier's devices only); NDCG@20 on each "
        "device's held-out last interaction, mean ± spread over seeds 0, 1, 2.",
        (
            "sweep scenarios/quickstart.yaml --grid federated.method=rule,nested,per-tier "
            f"--seeds 0,1,2 {ENTRYWISE} {FOUR} {SANDWICH} {NO_EVERY_DEVICE} --out {{out}}",
        ),
        ("summary.csv",),
        ("quality_vs_memory.png", "tiers.png"),
    ),
    Study(
        "methods-ml1m",
        "Federated methods at equal bytes (ML-1M, 3 seeds)",
        "RULE in full mode is the best federated method at equal bytes on ML-1M: 0.0346 over "
        "the fleet against 0.0315 in budgeted mode, 0.0294 nested, 0.0291 per-tier and "
        "full-prefix, 0.0258 popularity, 0.0201 QR and 0.0118 hashing (40 rounds, earlier "
        "settings).",
        "`scenarios/ml1m-fleet.yaml` (6,040 devices, 25% per round, 40 rounds) with five tiers of "
        "equal share at 1/16, 1/8, 1/4, 1/2 and 1 of the full table, in one sweep: RULE (full "
        "mode, and budgeted mode: devices train only the searched blocks that fit, refitted "
        "every 10 rounds) against every federated baseline in the same rounds and byte "
        "accounting: `nested` (HeteroFL-style slicing), `per-tier` (one model per tier), "
        "`full-prefix` (the full table, truncated at dispatch), `hashing` and `qr` (one "
        "compressed table per tier at its budget) and `popularity`; seeds 0, 1, 2 (each seed "
        "draws its own fleet).",
        (
            f"sweep scenarios/ml1m-fleet.yaml --grid {METHODS} --seeds 0,1,2 "
            f"--set federated.rounds=40 --set train.negative_exponent=0 --set {FIVE_TIERS} "
            f"{ENTRYWISE} {ADAM_LR} {LABELLING} {FOUR} {REFIT} {FLEET_BEFORE} {NO_EVERY_DEVICE} "
            "--out {out}",
        ),
        ("summary.csv",),
        ("quality_vs_memory.png", "tiers.png"),
    ),
    Study(
        "optimisers",
        "Server optimisers on the ML-1M fleet (seed 0)",
        "After 40 rounds FedAvg ends highest: 0.0326 against 0.0317 FedAvgM, 0.0298 FedAdam and"
        " 0.0288 FedYogi (seed 0, earlier settings).",
        "`scenarios/ml1m-fleet.yaml` (full mode, 40 rounds, 25% of 6,040 devices per round), "
        "validated every 2 rounds, with each server optimiser on the row/block-sparse "
        "aggregate (Reddi et al. 2021): FedAvg (server lr 1), FedAvgM (lr 0.5, momentum 0.9), "
        "FedAdam and FedYogi (lr 0.05, beta1 0.9, beta2 0.99, tau 1e-3); `curves.png` has "
        "validation NDCG@20 against round and against seconds.",
        tuple(
            "run scenarios/ml1m-fleet.yaml --set federated.rounds=40 "
            f"--set train.negative_exponent=0 --set federated.eval_every=2 {sets} "
            f"{ENTRYWISE} {ADAM_LR} {LABELLING} {FOUR} {REFIT} --set name=opt-{name} -q "
            f"{FLEET_BEFORE} --out {{out}}"
            for name, sets in [
                ("fedavg", "--set federated.server_optimizer=fedavg"),
                (
                    "fedavgm",
                    "--set federated.server_optimizer=fedavgm --set federated.server_lr=0.5",
                ),
                (
                    "fedadam",
                    "--set federated.server_optimizer=fedadam --set federated.server_lr=0.05",
                ),
                (
                    "fedyogi",
                    "--set federated.server_optimizer=fedyogi --set federated.server_lr=0.05",
                ),
            ]
        ),
        ("summary.csv",),
        ("curves.png",),
        only_all=True,
    ),
    Study(
        "centralised-ml1m",
        "Centralised RULE and every baseline at equal bytes (ML-1M, 3 seeds)",
        "Centralised RULE's searched configurations beat every compressed table at 1/16 and 1/8"
        " (0.0409 at 1/16 against 0.0284 retrained, 0.0243 QR, 0.0062 hashing); from 1/4 up the"
        " retrained model matches it.",
        "`scenarios/ml1m-rule-centralized.yaml` (seeds 0, 1, 2) with every baseline codec: the "
        "supernet searched at 1/16 … 1 of the full table (evolution, verified on validation; "
        "greedy, uniform and random beside it), plain BPR-MF with the same search, BPR-MF "
        "retrained at the dimension of equal memory, the plain model truncated to a uniform "
        "prefix (`full-prefix`), the hashing trick and quotient-remainder embeddings at equal "
        "bytes, and popularity; test NDCG@20 over all 6,040 users.",
        (
            "run scenarios/ml1m-rule-centralized.yaml --set train.lambda_div=0.01 "
            "--set train.negative_exponent=0 "
            "--set 'references.baselines=[full, hashing, qr, popularity]' "
            "--set name=ml1m-rule -q --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("quality_vs_memory.png",),
    ),
    Study(
        "diversity",
        "The diversity regulariser and the block size (centralised ML-1M, seed 0)",
        "The block-diversity regulariser helps only at 1/16 (B = 32: 0.0406 against 0.0387) and"
        " costs at 1/8 to 1/2; 8 or 16 wider blocks do better at 1/16 and worse at the full "
        "budget (seed 0).",
        "`scenarios/ml1m-rule-centralized.yaml` (RULE and the evolution search at 1/16 … 1, "
        "verified on validation; no references) with the block-diversity regulariser off "
        "(`lambda_div` 0) and on (0.01), at B = 32 blocks of 2 dimensions (at least one block "
        "per group) and at B = 16 and 8 (4- and 8-dimension blocks, `min_blocks_per_group: 0`, "
        "so that 1/16 is feasible by leaving groups out); test NDCG@20 over all 6,040 users.",
        (
            "sweep scenarios/ml1m-rule-centralized.yaml --grid "
            "'model.blocks,model.min_blocks_per_group=[32,1],[16,0],[8,0]' "
            "--grid train.lambda_div=0,0.01 --seeds 0 --set train.negative_exponent=0 "
            "--set references.plain=false "
            "--set references.retrained=false --set 'search.compare=[]' --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("quality_vs_memory.png",),
    ),
    Study(
        "tail",
        "Overall against tail quality: the search objective's tail weight (centralised ML-1M)",
        "Weighting tail quality in the search trades overall for tail NDCG@20 at every budget: "
        "at 1/4, w = 0.5 gives tail 0.0304 against 0.0062 and overall 0.0338 against 0.0479 "
        "(seed 0).",
        "`scenarios/ml1m-rule-centralized.yaml` (seed 0, no references) with the estimator's "
        "label and the search objective mixing overall and tail NDCG@20 as "
        "`(1 - w) * overall + w * tail` for w = `search.tail_weight` in 0, 0.25, 0.5, 0.75, "
        "1 (tail: items outside the popular head, `eval.head_share`); `tradeoff.png` has one "
        "line per budget through its (tail, overall) points.",
        (
            "sweep scenarios/ml1m-rule-centralized.yaml --grid "
            "search.tail_weight=0,0.25,0.5,0.75,1 --seeds 0 --set train.negative_exponent=0 "
            "--set references.plain=false "
            "--set references.retrained=false --set 'search.compare=[]' --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("tradeoff.png",),
    ),
    Study(
        "negatives",
        "Popularity-aware negatives (centralised ML-1M, 3 seeds)",
        "Negatives drawn by the square root of popularity raise both overall and tail quality "
        "of centralised RULE: at 1/4, 0.0520 against 0.0477 and tail 0.0083 against 0.0037.",
        "`scenarios/ml1m-rule-centralized.yaml` (seeds 0, 1, 2; RULE, plain BPR-MF with the "
        "same search, BPR-MF retrained at equal memory) with negatives drawn uniformly "
        "(`train.negative_exponent` 0) and in proportion to the square root of item popularity "
        "(0.5): popular items are pushed down more often, so tail items rise in the ranking; "
        "test NDCG@20 and tail NDCG@20 over all 6,040 users.",
        (
            "sweep scenarios/ml1m-rule-centralized.yaml --grid train.negative_exponent=0,0.5 "
            "--seeds 0,1,2 --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("quality_vs_memory.png",),
    ),
    Study(
        "tail-retrained",
        "A small tail weight against the retrained model (centralised ML-1M, 3 seeds)",
        "A tail weight of 0.25 brings RULE's tail NDCG@20 to the retrained model's (1/4: 0.0180"
        " against 0.0163) at a lower overall figure (0.0462 against 0.0474); 0.1 keeps overall "
        "above it (0.0489) with less tail (0.0101).",
        "`scenarios/ml1m-rule-centralized.yaml` at its defaults (negatives by the square root "
        "of popularity; seeds 0, 1, 2) with `search.tail_weight` 0.1 and 0.25, beside BPR-MF "
        "retrained at the dimension of equal memory: overall and tail NDCG@20 per budget (w = 0 "
        "is in the study above).",
        (
            "sweep scenarios/ml1m-rule-centralized.yaml --grid search.tail_weight=0.1,0.25 "
            "--seeds 0,1,2 --set references.plain=false --set 'search.compare=[]' --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("tradeoff.png",),
    ),
    Study(
        "negatives-fleet",
        "Popularity-aware negatives on devices (federated ML-1M, 3 seeds)",
        "On devices, negatives by the square root of the estimated popularity nearly double "
        "tail NDCG@20 (0.0047 against 0.0025) at the same overall quality (0.0379 against "
        "0.0376).",
        "`scenarios/ml1m-fleet.yaml` (full mode, 120 rounds, 25% of 6,040 devices per round, "
        "four tiers) with negatives drawn uniformly and in proportion to the square root of "
        "the popularity each device estimates from the layout it received (1 / the size of "
        "the item's group: groups hold equal interaction mass); no message field is added.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid train.negative_exponent=0,0.5 "
            f"--seeds 0,1,2 {ENTRYWISE} {ADAM_LR} {LABELLING} {FOUR} {REFIT} {FLEET_BEFORE} "
            "--out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "negatives-quickstart",
        "Popularity-aware negatives on devices (federated ML-100K, 3 seeds)",
        "On the quickstart, popularity-aware negatives lose overall (0.0589 against 0.0649) for"
        " a smaller tail gain (0.0128 against 0.0097), so it keeps uniform negatives.",
        "The quickstart fleet (943 devices, 120 rounds of half the fleet) with negatives drawn "
        "uniformly (its default) and by the square root of the popularity devices estimate "
        "from the layout: on this small catalogue the tail gains less and overall quality "
        "falls, so the quickstart keeps uniform negatives.",
        (
            "sweep scenarios/quickstart.yaml --grid train.negative_exponent=0,0.5 "
            f"--seeds 0,1,2 {ENTRYWISE} {FOUR} {SANDWICH} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
        only_all=True,
    ),
    Study(
        "rowwise-fleet",
        "Row-wise local Adam: the ML-1M fleet in both modes (3 seeds)",
        "Row-wise local Adam gains 9% in full mode (0.0415 against 0.0379 with entry-wise Adam)"
        " and loses 8% in budgeted mode (0.0349 against 0.0377).",
        "`scenarios/ml1m-fleet.yaml` (120 rounds, 25% of 6,040 devices per round, four "
        "tiers, 4 negatives, devices on `rowwise-adam`: one second moment per item row), in full "
        "mode (every device trains the whole supernet) and budgeted mode (devices train only "
        "the searched blocks that fit, refitted every 10 rounds). With entry-wise `adam` a "
        "device's first step moves every entry it touched by `local_lr`, whatever its gradient, "
        "so blocks that few sub-configurations use move as much as the rest, and the "
        "sub-configurations stop being nested. Full mode gains 9% overall over entry-wise "
        "`adam` (0.0379 ± 0.0014, the `negative_exponent=0.5` rows of the study above), most "
        "at the tv tier (0.0401 -> 0.0492). Budgeted mode loses 8% (entry-wise: 0.0377 ± "
        "0.0013 from `--grid federated.mode=budgeted --set federated.local_optimizer=adam`): "
        "a budgeted device trains a few blocks of a row, so run budgeted mode with `adam`.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid federated.mode=full,budgeted "
            f"--seeds 0,1,2 {ROWWISE} {LABELLING} {FOUR} {REFIT} {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-negatives",
        "Two negatives per positive on the ML-1M fleet (3 seeds)",
        "Two negatives instead of 4 lift the fleet to 0.0426 from 0.0415 and train 35% faster, "
        "but verification on the labelling devices sends the tv tier a smaller configuration "
        "(0.0428 against 0.0492).",
        "`scenarios/ml1m-fleet.yaml` (full mode, row-wise Adam) with 2 sampled negatives per "
        "positive instead of 4, as the centralised RULE experiment samples: overall 0.0426 "
        "against 0.0415 (study above), training 35% faster (108 s against 165 s), and the "
        "searched sub-configurations measure far higher on validation (1/16, 1/8, 1/4 at "
        "0.0429 / 0.0475 / 0.0483 against 0.0377 / 0.0398 / 0.0429, seed 0). But the tv tier "
        "fell (0.0428 against 0.0492): verification, on the same 2,000 devices' validation "
        "items the estimator was fitted to, chose a 1/4 or 1/8 configuration over the near-full "
        "one for budget 1 in two seeds, and the test items disagreed. The next study verifies "
        "on the devices that did not label.",
        (
            f"sweep scenarios/ml1m-fleet.yaml --grid train.negatives=2 --seeds 0,1,2 {ROWWISE} "
            f"{LABELLING} {REFIT} {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-shipped",
        "The ML-1M fleet in both modes, refitting user vectors before evaluation (3 seeds)",
        "With verification on held-out devices, full mode with row-wise Adam and 2 negatives "
        "reaches 0.0433 ± 0.0011; budgeted mode with entry-wise Adam 0.0359 (2 negatives) and "
        "0.0366 (4).",
        "`scenarios/ml1m-fleet.yaml` (120 rounds, 25% of 6,040 devices per round, four tiers, "
        "2 negatives, verification by the 4,040 devices that did not label, user vectors "
        "refitted for one epoch before evaluation as before `fleet-stored-users`): full "
        "mode with `rowwise-adam` (the default) reaches 0.0433 ± 0.0011, against 0.0379 ± "
        "0.0014 with the earlier defaults (entry-wise Adam, 4 negatives, `negatives-fleet`). "
        "Budgeted mode, here with entry-wise `adam` and 2 negatives, reaches 0.0359 ± 0.0011, "
        "and `adam` with 4 negatives (next study) 0.0366 ± 0.0017: the scenario's header "
        "advises both for budgeted mode, though the difference is within the seeds' spread.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.mode,federated.local_optimizer="
            "[full,rowwise-adam],[budgeted,adam]' --seeds 0,1,2 "
            f"{ADAM_LR} {REFIT} {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted",
        "The ML-1M fleet in budgeted mode with entry-wise Adam and 4 negatives (3 seeds)",
        "Budgeted mode with entry-wise Adam and 4 negatives reaches 0.0366 ± 0.0017, about 15% "
        "below full mode (0.0433).",
        "`scenarios/ml1m-fleet.yaml` in budgeted mode with entry-wise `adam` and 4 negatives "
        "(held-out verification, user vectors refitted): 0.0366 ± 0.0017, "
        "against 0.0359 ± 0.0011 with 2 negatives (previous study) and 0.0433 ± 0.0011 in "
        "full mode. Budgeted training stays about 15% below full mode.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid "
            "'federated.mode,federated.local_optimizer,train.negatives=[budgeted,adam,4]' "
            f"--seeds 0,1,2 {ADAM_LR} {REFIT} {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "rounds",
        "Longer federated training: the ML-1M fleet for 300 rounds (seed 0)",
        "300 rounds instead of 120 give nothing (test 0.0419 against 0.0423, seed 0) for 2.2 "
        "times the training time: validation levels off near round 80.",
        "`scenarios/ml1m-fleet.yaml` as `fleet-shipped` ran it, but 300 rounds instead of 120. "
        "Validation (`curves.png`) levels off near round 80 and then moves between 0.042 and "
        "0.048 without a trend; the kept round (230, 0.0479) is no better than the 120-round "
        "run's (round 100, 0.0478), and test NDCG@20 is 0.0419 against 0.0423 for seed 0 of "
        "`fleet-shipped`, for 2.2 times the training time. More rounds do not close the gap to "
        "centralised RULE.",
        (
            "run scenarios/ml1m-fleet.yaml --set federated.rounds=300 --set name=r300 -q "
            f"{ROWWISE} {REFIT} {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("curves.png",),
    ),
    Study(
        "fleet-stored-users",
        "The ML-1M fleet without refitting user vectors before evaluation (3 seeds)",
        "Evaluating with the user vector kept from training instead of a refit: full mode "
        "0.0439 against 0.0433 (tv +9%, watch -4%); budgeted mode loses tail quality (0.0006 "
        "against 0.0029) and keeps the refit.",
        "Before this study a device refitted its user vector to every table it evaluated "
        "(labelling, validation, test) for one local epoch (`federated.personalize_epochs: "
        "1`): about five fresh Adam steps of `local_lr` 0.1, which move every entry by about "
        "0.1 whatever its gradient. With `personalize_epochs: 0` a device evaluates with the "
        "user vector it kept from its last training round. Full mode (`rowwise-adam`, 2 "
        "negatives, the scenario's defaults now): 0.0380 / 0.0442 / 0.0452 / 0.0486 per tier, "
        "0.0439 ± 0.0003 overall, against 0.0395 / 0.0445 / 0.0447 / 0.0444 and 0.0433 ± 0.0011 "
        "(`fleet-shipped`): the tv tier gains in every seed (9% on average), the watch tier "
        "loses 4% (its "
        "1/16 table scores differently from the table the vector was trained with), quality "
        "now grows with the budget, and the refits' few seconds are saved. Budgeted "
        "mode (`adam`, 4 negatives): 0.0342 / 0.0384 / 0.0388 / 0.0392, 0.0376 ± 0.0030 "
        "against 0.0366 ± 0.0017 (`fleet-budgeted`), but tail NDCG@20 falls from 0.0029 to "
        "0.0006, so the scenario's header keeps the refit for budgeted mode.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.mode,federated.local_optimizer,"
            "train.negatives,federated.personalize_epochs=[full,rowwise-adam,2,0],"
            f"[budgeted,adam,4,0]' --seeds 0,1,2 {ADAM_LR} {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "rowwise-quickstart",
        "Row-wise local Adam and two negatives on the quickstart (federated ML-100K, 3 seeds)",
        "Row-wise Adam and 2 negatives lift the quickstart from 0.0649 to 0.0692 NDCG@20 "
        "(row-wise Adam with 4 negatives: 0.0663).",
        "The quickstart fleet (943 devices, 120 rounds of half the fleet) with entry-wise and "
        "row-wise local Adam, and row-wise Adam with 2 negatives per positive instead of 4.",
        (
            "sweep scenarios/quickstart.yaml --grid "
            "'federated.local_optimizer,train.negatives=[adam,4],[rowwise-adam,4],"
            "[rowwise-adam,2]' --seeds 0,1,2 --set train.sampling=sandwich --out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
        only_all=True,
    ),
    Study(
        "fleet-gentle-refit",
        "The ML-1M fleet with a gentler refit of user vectors (3 seeds)",
        "A gentler refit of user vectors (3 epochs at 0.01) scores the same as none (0.0439 ± "
        "0.0010 against 0.0439 ± 0.0003), so the fleet keeps none.",
        "`scenarios/ml1m-fleet.yaml` (full mode) with a refit of 3 epochs at "
        "`federated.personalize_lr` 0.01 instead of none: 0.0390 / 0.0455 / 0.0439 / 0.0480 per "
        "tier, 0.0439 ± 0.0010 overall, against 0.0380 / 0.0442 / 0.0452 / 0.0486 and 0.0439 ± "
        "0.0003 without a refit (`fleet-stored-users`): the same within the seeds' spread, so "
        "the scenario keeps the simpler setting.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid federated.personalize_lr=0.01 "
            f"--set federated.personalize_epochs=3 --seeds 0,1,2 {ROWWISE} {FLEET_BEFORE} "
            "--out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "quickstart-refit",
        "The quickstart with and without refitting user vectors before evaluation (3 seeds)",
        "On the quickstart the refit of user vectors helps (0.0692 against 0.0645 without, "
        "lower in every tier), so it keeps it.",
        "`scenarios/quickstart.yaml` (ML-100K, 943 devices, half of them per round) with "
        "`federated.personalize_epochs` 1 (the default) and 0. Here the refit helps: 0.0692 ± "
        "0.0066 with it, 0.0645 ± 0.0058 without, lower in every tier; on the ML-1M fleet it "
        "costs the large tables (`fleet-stored-users`). The quickstart keeps the refit.",
        (
            "sweep scenarios/quickstart.yaml --grid federated.personalize_epochs=0,1 --seeds 0,1,2 "
            "--set train.sampling=sandwich --out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-local-sgd",
        "Plain SGD on the ML-1M fleet's devices (3 seeds)",
        "Plain SGD at rate 8 on the devices lifts the fleet to 0.0470 ± 0.0006 from 0.0439 with"
        " row-wise Adam: 94-95% of centralised RULE on every device.",
        "`scenarios/ml1m-fleet.yaml` (full mode) with plain SGD at `local_lr` 8 on the devices "
        "instead of row-wise Adam at 0.1 (the scenario's defaults now): 0.0367 / 0.0492 / "
        "0.0516 / 0.0503 per tier, 0.0470 ± 0.0006 overall, against 0.0380 / 0.0442 / 0.0452 / "
        "0.0486 and 0.0439 ± 0.0003 (`fleet-stored-users`), higher in every seed: 96 / 99 / 96% "
        "of centralised RULE at 1/8, 1/4 and 1, the watch tier 84% at 1/16. A device's fresh Adam "
        "moves every row it touches by about the learning rate at its first step, whatever the "
        "gradient, so the server averaged normalised steps; SGD's steps are the devices' "
        "gradients. Tail NDCG@20 is lower (0.0036 against 0.0050). Seed 0 at rates 1, 4, 16: "
        "0.0356 (validation still rising at round 120), 0.0443, 0.0448 (validation falling "
        "after round 90). Budgeted mode at rate 8 (seed 0) became unstable after round 30 (its "
        "best round), so the scenario's header keeps entry-wise Adam for it. Each tier's devices "
        "are a random quarter of the users, drawn anew per seed (seed 1's watches score 0.0301 "
        "and 0.0317 under both optimisers), while centralised RULE is tested on every user: "
        "`eval.every_device` (on in the scenario) also tests every tier's configuration on "
        "every device (`ndcg@20_every_device`): 0.0407 / 0.0477 / 0.0494 / 0.0497 = 94 / 94 / "
        "95 / 95% of centralised RULE, increasing with the budget, the seeds' spread 3–5 times "
        "smaller than the tiers' at 1/16.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid "
            "'federated.local_optimizer,federated.local_lr=[sgd,8]' --seeds 0,1,2 "
            f"{FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-sgd",
        "Plain SGD in budgeted mode (the ML-1M fleet, 3 seeds)",
        "Plain SGD in budgeted mode with estimator refits is unstable: 0.0335 ± 0.0048 against "
        "0.0366 with Adam, validation peaking early and falling.",
        "`scenarios/ml1m-fleet.yaml` in budgeted mode as its header advises (4 negatives, user "
        "vectors refitted), but with the scenario's plain SGD at `local_lr` 8 instead of "
        "entry-wise Adam at 0.1, stopping after 2 validations without a gain: 0.0264 / 0.0336 / "
        "0.0365 / 0.0378 per tier, 0.0335 ± 0.0048 overall, against 0.0366 ± 0.0017 with Adam "
        "(`fleet-budgeted`). Validation peaked at round 30, 10 and 10 and then fell. Every 10 "
        "rounds the estimator is refitted (`refit_every`) and the devices then train newly "
        "searched blocks, against user-vector blocks they had never trained; without the refits "
        "validation rose until round 50 (`fleet-budgeted-fixed`). The header keeps Adam for "
        "budgeted mode.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.mode,train.negatives,"
            "federated.personalize_epochs,federated.patience=[budgeted,4,1,2]' --seeds 0,1,2 "
            f"{FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-fixed",
        "Budgeted mode without estimator refits during training (the ML-1M fleet, 3 seeds)",
        "Without estimator refits during training budgeted mode is stable (0.0360): phones and "
        "tvs gain (83-84% of centralised RULE), the watch tier falls (0.0237 against 0.0333).",
        "As `fleet-budgeted-sgd`, but with `refit_every: 0`: the devices train the largest "
        "uniform configuration of their budget throughout, and the search runs once, after "
        "training. Validation no longer collapses (best rounds 50, 50, 40). Overall quality is "
        "that of entry-wise Adam (0.0360 ± 0.0003 against 0.0366 ± 0.0017, `fleet-budgeted`), "
        "but it is spread differently. The phone and tv tiers gain (0.0434 and 0.0438, 83 and "
        "84% of centralised RULE, against 0.0371 and 0.0372), and tail NDCG@20 too (0.0048 "
        "against 0.0029). The watch tier falls (0.0237 against 0.0333). Its devices trained "
        "two uniform blocks per item and then receive a searched configuration. That "
        "configuration scores 0.0349 on every device (`ndcg@20_every_device`), but watch user "
        "vectors never trained most of its blocks.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.mode,train.negatives,"
            "federated.personalize_epochs,federated.refit_every=[budgeted,4,1,0]' --seeds 0,1,2 "
            f"{FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-verified",
        "Budgeted mode verified per budget (the ML-1M fleet, 3 seeds)",
        "Verifying each budget on its own devices changes nothing here (0.0359 ± 0.0002): the "
        "watch tier's loss is not a wrong choice between candidates.",
        "As `fleet-budgeted-fixed`, with `search.verify_per_budget: true`: each budget's "
        "candidates (the searched and the largest uniform configurations that fit) are measured "
        "on that budget's own held-out devices, each refitting its user vector to each "
        "candidate as on dispatch. The watch devices still measured the searched configuration "
        "above the two uniform blocks they trained, and the figures are those of "
        "`fleet-budgeted-fixed`: 0.0237 / 0.0330 / 0.0436 / 0.0430 per tier, 0.0359 ± 0.0002 "
        "overall. The watch tier's loss is not a wrong choice between candidates, so the "
        "option stays off by default.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.mode,train.negatives,"
            "federated.personalize_epochs,federated.refit_every,search.verify_per_budget="
            f"[budgeted,4,1,0,true]' --seeds 0,1,2 {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-popularity",
        "Budgeted mode starting from popular blocks (the ML-1M fleet, 3 seeds)",
        "Starting budgeted devices from popularity-shaped blocks lifts budgeted mode from "
        "0.0360 to 0.0453 ± 0.0022, 85-96% of centralised RULE per tier.",
        "As `fleet-budgeted-fixed`, with `federated.start_config: popularity`: instead of the "
        "largest uniform configuration, each budget's devices train from the first round blocks "
        "in proportion to the mean popularity of each group's items (mixed-dimension "
        "embeddings), the shape the search gives small budgets, and verification measures that "
        "configuration too. Validation during training now measures each budget's "
        "configuration on that budget's labelling devices (it measured the full configuration, "
        "which no budgeted device holds). Overall NDCG@20 rises from 0.0360 ± 0.0003 "
        "(`fleet-budgeted-fixed`) and 0.0366 ± 0.0017 (entry-wise Adam with refits, "
        "`fleet-budgeted`) to 0.0453 ± 0.0022: 0.0368 / 0.0454 / 0.0488 / 0.0504 per tier, "
        "85 / 89 / 94 / 96% of centralised RULE (was 54 / 65 / 83 / 84%), growing with the "
        "budget at every step; on every device 0.0410 / 0.0461 / 0.0461 / 0.0459. The watch "
        "tier gains most (0.0237 to 0.0368): its devices train the head-heavy blocks they "
        "receive. Tail NDCG@20 falls (0.0023 against 0.0048). Before the validation change the "
        "same settings gave 0.0437 ± 0.0013 (0.0369 / 0.0435 / 0.0463 / 0.0485), keeping "
        "rounds 40–60 where the full configuration peaked; now rounds 90–120 are kept. "
        "Verification sent a 1/8 configuration to the 1/4 budget in every seed and to the full "
        "budget in two of three.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.mode,train.negatives,"
            "federated.personalize_epochs,federated.refit_every,federated.start_config="
            f"[budgeted,4,1,0,popularity]' --seeds 0,1,2 {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-popularity-verified",
        "Budgeted mode from popular blocks, verified per budget (the ML-1M fleet, 3 seeds)",
        "Popularity-shaped start blocks, verified per budget: 0.0458 ± 0.0018, 87 / 90 / 92 / "
        "101% of centralised RULE per tier, with the tail recovered: the budgeted variant's "
        "settings.",
        "As `fleet-budgeted-popularity`, with `search.verify_per_budget: true`: each budget's "
        "candidates that fit (searched, largest uniform, and the start configuration) are "
        "measured on that budget's own held-out devices, as dispatched. 0.0378 / 0.0458 / "
        "0.0477 / 0.0529 per tier, 87 / 89.7 / 92 / 101% of centralised RULE, growing with the "
        "budget at every step; 0.0458 ± 0.0018 overall (0.0453 ± 0.0022 without), and tail "
        "NDCG@20 recovers (0.0040 against 0.0023). Each budget now keeps the configuration its "
        "own devices measured best: in every seed the watches kept their start configuration, "
        "the phones a 1/8 configuration and the tvs the 1/4 start configuration. The run takes "
        "about a "
        "quarter longer (5–6 minutes). The scenario's header advises this for budgeted mode. "
        "(`ndcg@20_every_device` measures a budget's configuration on devices of other "
        "budgets, whose user vectors were trained on other blocks: in budgeted mode it is not "
        "what those devices would get.)",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid search.verify_per_budget=true "
            "--set federated.mode=budgeted --set train.negatives=4 "
            "--set federated.personalize_epochs=1 --set federated.refit_every=0 "
            f"--set federated.start_config=popularity --seeds 0,1,2 {FLEET_BEFORE} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "quickstart-local-sgd",
        "Plain SGD on the quickstart's devices (federated ML-100K, 3 seeds)",
        "Plain SGD at rate 8 loses on the quickstart (0.0632 against 0.0692), so it keeps "
        "row-wise Adam.",
        "`scenarios/quickstart.yaml` with plain SGD at `local_lr` 8 on the devices, as "
        "`ml1m-fleet.yaml` now trains (`fleet-local-sgd`): 0.0632 ± 0.0057 against 0.0692 ± "
        "0.0066 with row-wise Adam at 0.1 (`quickstart-refit`), lower in every seed, though its "
        "validation NDCG@20 at round 120 was higher in every seed (0.087–0.089 against "
        "0.076–0.086). Its devices refit their user vectors before evaluating at `local_lr`, "
        "here SGD at rate 8. The quickstart keeps row-wise Adam.",
        (
            "sweep scenarios/quickstart.yaml --grid "
            "'federated.local_optimizer,federated.local_lr=[sgd,8]' --seeds 0,1,2 "
            f"{SANDWICH} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
        only_all=True,
    ),
    Study(
        "quickstart-ceiling",
        "Centralised RULE at the quickstart's budgets: the ceiling of its target (ML-100K, "
        "3 seeds)",
        "Centralised RULE at the quickstart's budgets caps a fleet that matched it in every "
        "tier at 0.0709, 88.5% of BPR-MF; the quickstart's 0.0692 is 98% of that ceiling.",
        "`scenarios/ml1m-rule-centralized.yaml` on ML-100K (batches of 2,048, uniform "
        "negatives as the quickstart draws them), searched at the quickstart's budgets 1/16, 1/4 "
        "and 1, beside plain BPR-MF with the same search; test NDCG@20 over all 943 users. "
        "RULE keeps 0.0649 / 0.0724 / 0.0759 of plain BPR-MF's 0.0801. Weighted by the "
        "quickstart's tier shares (0.3 watches, 0.5 phones, 0.2 tvs), a fleet that matched "
        "centralised RULE in every tier would score 0.0709, 88.5% of BPR-MF: the quickstart's "
        "95% target is out of reach of any fleet with these tiers. The quickstart's 0.0692 ± "
        "0.0066 (`quickstart-refit`) is 98% of that ceiling. At budget 1 the verified choice "
        "(a configuration of 64% of the table, chosen on 943 validation items) tests below the "
        "full supernet (0.0824): with so few users, the best measured candidate is partly luck.",
        (
            "run scenarios/ml1m-rule-centralized.yaml --set data.source=ml-100k "
            "--set name=quickstart-ceiling --set train.batch_size=2048 --set train.epochs=60 "
            "--set 'search.budgets=[1/16,1/4,1]' --set 'search.compare=[]' "
            "--set references.retrained=false --set train.negative_exponent=0 -q --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("quality_vs_memory.png",),
    ),
    Study(
        "popular-sampling",
        "Popularity-shaped sub-configurations in centralised training (ML-1M, 3 seeds)",
        "Popularity-shaped sub-configurations do not help centralised training (0.0429 to "
        "0.0522 against 0.0435 to 0.0531 from 1/16 to 1), so it keeps the sandwich.",
        "`scenarios/ml1m-rule-centralized.yaml` (RULE and the evolution search, verified on "
        "validation; no references) with `train.sampling` `popular` against `sandwich`: each "
        "step trains, besides the full and the smallest configuration, one whose blocks per "
        "group follow the mean popularity of the group's items at a random size, instead of "
        "one with a random number of blocks per group. Centrally this does not help: 0.0429 / "
        "0.0500 / 0.0516 / 0.0522 at 1/16, 1/8, 1/4 and 1 against 0.0435 / 0.0510 / 0.0532 / "
        "0.0531, lower at every budget by less than two seeds' spreads, and the largest budgets "
        "keep smaller configurations (323 KB against 472 KB) with a third of the tail quality. "
        "The centralised scenario keeps the sandwich. Its figures here, from the current code, "
        "are the centralised reference of the fleet studies below; at 1/4 and 1 they are above "
        "those of `negatives` (0.0520 and 0.0523).",
        (
            "sweep scenarios/ml1m-rule-centralized.yaml --grid train.sampling=popular,sandwich "
            "--seeds 0,1,2 --set references.plain=false --set references.retrained=false "
            "--set 'search.compare=[]' --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("quality_vs_memory.png",),
    ),
    Study(
        "fleet-popular-sampling",
        "Popularity-shaped sub-configurations on the ML-1M fleet (full mode, 3 seeds)",
        "On the fleet popularity-shaped sub-configurations win, 0.0478 ± 0.0010 against 0.0467 "
        "± 0.0008 and higher in every seed, so the fleet now samples them.",
        "`scenarios/ml1m-fleet.yaml` (full mode) with `train.sampling` `popular` against "
        "`sandwich`. Besides the full and the smallest configuration, each local step trains "
        "one whose blocks per group follow the mean popularity of the group's items, at a "
        "log-uniform random size: the shape the search gives small budgets (24, 21, 16, 12, "
        "12, 2, 1, … blocks at 1/16). Devices compute it from the layout they receive (groups "
        "hold equal interaction mass, so a group's mean popularity is 1 / its size); no "
        "message field is added. Overall NDCG@20 0.0478 ± 0.0010 against 0.0467 ± 0.0008, "
        "higher in every seed by 0.0010–0.0012; on every device 0.0400 / 0.0481 / 0.0501 / "
        "0.0502 per tier against 0.0401 / 0.0467 / 0.0500 / 0.0500, the gain at 1/8; tail "
        "NDCG@20 0.0029 against 0.0034. That is 92 / 94.3 / 94.2 / 94.5% of centralised RULE "
        "(`popular-sampling`, sandwich), against 92 / 91.6 / 94.0 / 94.2%. The scenario now "
        "samples `popular`.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid train.sampling=popular,sandwich "
            f"--seeds 0,1,2 {DIVERSITY} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-popular-sampling",
        "Popularity-shaped sub-configurations in budgeted mode (the ML-1M fleet, 3 seeds)",
        "In budgeted mode popularity-shaped sub-configurations lose (0.0435 against 0.0458), so"
        " the budgeted variant keeps the sandwich.",
        "The budgeted variant of `fleet-budgeted-popularity-verified` with `train.sampling` "
        "`popular` instead of the sandwich: a device's sampled configurations are cut to the "
        "blocks it holds, which already follow popularity. 0.0375 / 0.0434 / 0.0455 / 0.0482 "
        "per tier, 0.0435 ± 0.0009 overall against 0.0458 ± 0.0018, lower at every tier; tail "
        "NDCG@20 rises from 0.0040 to 0.0058. The scenario's header keeps the sandwich for "
        "budgeted mode.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid train.sampling=popular "
            "--set federated.mode=budgeted --set federated.refit_every=0 "
            "--set federated.start_config=popularity --set search.verify_per_budget=true "
            "--set train.negatives=4 --set federated.personalize_epochs=1 --seeds 0,1,2 "
            f"{DIVERSITY} --out {{out}}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-no-diversity",
        "The ML-1M fleet without the block-diversity regulariser (full mode, 3 seeds)",
        "Without the diversity regulariser the fleet gains at 1/16 and 1/8 on every device "
        "(0.0412 / 0.0490 against 0.0400 / 0.0481) at the same overall 0.0478, so it now trains"
        " without it.",
        "`scenarios/ml1m-fleet.yaml` (full mode, `popular` sampling) with `train.lambda_div` 0 "
        "instead of 0.01, as the centralised scenario already trains (`diversity`: no gain). "
        "On every device 0.0412 / 0.0490 / 0.0506 / 0.0502 per tier against 0.0400 / 0.0481 / "
        "0.0501 / 0.0502 (`fleet-popular-sampling`), higher at 1/16 in every seed (0.0406, "
        "0.0397, 0.0432 against 0.0387, 0.0387, 0.0427) and at 1/8 higher or equal in every "
        "seed; 94.7 / 96.1 / 95.1 / 94.5% of centralised RULE (`popular-sampling`, sandwich). "
        "Overall "
        "NDCG@20 is the same, 0.0478 ± 0.0010, and tail NDCG@20 rises from 0.0029 to 0.0037. "
        "The scenario now trains without the regulariser.",
        ("sweep scenarios/ml1m-fleet.yaml --grid train.lambda_div=0 --seeds 0,1,2 --out {out}",),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "fleet-budgeted-no-diversity",
        "Budgeted mode without the block-diversity regulariser (the ML-1M fleet, 3 seeds)",
        "In budgeted mode dropping the diversity regulariser gains nothing (0.0455 against "
        "0.0458), so the budgeted variant keeps it.",
        "The budgeted variant as the scenario's header advises (sandwich sampling), with "
        "`train.lambda_div` 0 instead of the 0.01 the header keeps: 0.0371 / 0.0448 / 0.0484 / "
        "0.0526 per tier, 0.0455 ± 0.0019 overall, against 0.0378 / 0.0458 / 0.0477 / 0.0529 and "
        "0.0458 ± 0.0018 (`fleet-budgeted-popularity-verified`): the same within the seeds' "
        "spread, and tail NDCG@20 0.0030 against 0.0040. Unlike full mode (`fleet-no-diversity`), "
        "budgeted mode gains nothing, so its advice keeps the regulariser.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid train.lambda_div=0 "
            "--set federated.mode=budgeted --set federated.refit_every=0 "
            "--set federated.start_config=popularity --set search.verify_per_budget=true "
            "--set train.negatives=4 --set federated.personalize_epochs=1 "
            "--set train.sampling=sandwich --seeds 0,1,2 --out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
    ),
    Study(
        "quickstart-popular-sampling",
        "Popularity-shaped sub-configurations on the quickstart (federated ML-100K, 3 seeds)",
        "Popularity-shaped sub-configurations lift the quickstart to 0.0702 from 0.0664, in "
        "every seed and tier: 99% of its ceiling.",
        "`scenarios/quickstart.yaml` with `train.sampling` `popular` against `sandwich` (as "
        "`fleet-popular-sampling`): 0.0702 ± 0.0032 against 0.0664 ± 0.0063, higher in every "
        "seed (0.0718, 0.0723, 0.0666 against 0.0707, 0.0694, 0.0591) and in every tier (0.0631 "
        "/ 0.0719 / 0.0769 against 0.0579 / 0.0684 / 0.0742), tail NDCG@20 0.0070 against "
        "0.0062. That is 87.6% of centralised BPR-MF (0.0801) and 99% of the quickstart's "
        "ceiling (0.0709, `quickstart-ceiling`). The quickstart now samples `popular`.",
        (
            "sweep scenarios/quickstart.yaml --grid train.sampling=popular,sandwich "
            "--seeds 0,1,2 --out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
        only_all=True,
    ),
    Study(
        "paired-reference",
        "The ML-1M fleet against centralised RULE on the same devices (5 seeds)",
        "The ML-1M fleet keeps about 95% of centralised RULE on every device at every budget in"
        " full mode (5 seeds); budgeted mode keeps 89-101% per tier on the tier's own devices.",
        "Each tier of the ML-1M fleet against centralised RULE at its budget on the same "
        "devices (`paired.csv`). `scenarios/ml1m-rule-centralized.yaml` (RULE only, the "
        "sandwich, as `popular-sampling`) saves each user's test NDCG@20 under each budget's "
        "configuration (`users-seed*.csv`), and `fedrule report` averages it, over the "
        "centralised seeds, on the devices each fleet seed drew into a tier. The fleets are "
        "`ml1m-fleet.yaml` in full mode with its defaults (labelled `sampling=popular`) and in "
        "budgeted mode as its header advises (`lambda_div-0.01`), both verifying each budget's "
        "popularity fit besides its searched and uniform configurations. Seeds 0-4; centralised "
        "RULE scores 0.0429 / 0.0502 / 0.0527 / 0.0529 at 1/16, 1/8, 1/4 and 1 over five seeds "
        "(0.0435 / 0.0510 / 0.0532 / 0.0531 over seeds 0-2), and 0.0402 on the seeds' watches. "
        "Full mode keeps 95.1 / 94.9 / 95.9 / 95.1% of it on every device "
        "(`every_device_ratio`: the precise figure in full mode, where every device trains the "
        "same way; over seeds 0-2 94.7 / 96.1 / 96.1 / 95.5%) and 95.0 / 93.9 / 98.4 / 92.9% on "
        "each tier's own devices (spread 3-8% over seeds). The popularity fit won at 1/4 and 1 "
        "in seed 1 (every device 0.0528 at both, against 0.0515 and 0.0511 without it, "
        "`fleet-no-diversity`) and at 1/4 in seed 2 (0.0510 against 0.0506); seed 0 is the "
        "same digit for digit. Budgeted mode, where a device's user vector knows only its "
        "tier's blocks, so that only its own devices measure a tier: 101 / 89.2 / 88.6 / 91.7% "
        "on the same devices, 95.0 / 92.2 / 90.3 / 93.1% of the all-user reference; its seeds "
        "0-2 are those of the same command without the new candidate, digit for digit, since "
        "its start configuration already was one. Centralised RULE itself at 1/4 and above, "
        "seeds 0-2: 0.0532 / 0.0531 / 0.0531 against 0.0515 / 0.0516 / 0.0516 without the "
        "candidate (in seeds 0 and 2 it is chosen at 1/4, in every seed at 1/2 and 1), with "
        "tail NDCG@20 0.022-0.024 at 1/2 and 1.",
        tuple(
            command.format(seeds=seeds)
            for seeds in ("0,1,2", "3,4")  # seeds 3 and 4 were added later, in their own sweeps
            for command in (
                "sweep scenarios/ml1m-rule-centralized.yaml --grid train.sampling=sandwich "
                "--seeds {seeds} --set references.plain=false --set references.retrained=false "
                "--set 'search.compare=[]' --out {{out}}",
                "sweep scenarios/ml1m-fleet.yaml --grid train.lambda_div=0 --seeds {seeds} "
                "--out {{out}}",
                "sweep scenarios/ml1m-fleet.yaml --grid train.lambda_div=0.01 "
                "--set federated.mode=budgeted --set federated.refit_every=0 "
                "--set federated.start_config=popularity --set search.verify_per_budget=true "
                "--set train.negatives=4 --set federated.personalize_epochs=1 "
                "--set train.sampling=sandwich --seeds {seeds} --out {{out}}",
            )
        ),
        ("paired.csv",),
        ("tiers.png",),
    ),
    Study(
        "quickstart-verify-popularity",
        "The quickstart verifying each budget's popularity fit (federated ML-100K, 3 seeds)",
        "Verifying each budget's popularity fit as well moves the quickstart within its noise "
        "(0.0706 against 0.0702).",
        "`scenarios/quickstart.yaml` as shipped, now that verification also measures each "
        "budget's popularity fit (`paired-reference`): 0.0706 ± 0.0022 overall against 0.0702 "
        "± 0.0032 (`quickstart-popular-sampling`), per seed 0.0704, 0.0728, 0.0685 against "
        "0.0718, 0.0723, 0.0666. The candidate is chosen for the tv tier in every seed (the "
        "fit at budget 1 in seed 0, at 1/4 in seeds 1 and 2) and for the phone tier in seeds 1 "
        "and 2: tv 0.0668 / 0.0801 / 0.0946 on test against 0.0737 / 0.0734 / 0.0834, phone "
        "0.0756 and 0.0681 against 0.0774 and 0.0688; 943 devices' validation items make the "
        "choice partly luck. The watch tier is unchanged; 84-87 s per seed.",
        (
            "sweep scenarios/quickstart.yaml --grid train.sampling=popular --seeds 0,1,2 "
            "--out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
        only_all=True,
    ),
    Study(
        "centralised-current",
        "Centralised RULE, every searcher and both references at the current defaults "
        "(ML-1M, 3 seeds)",
        "Centralised RULE at the current defaults keeps 86 / 101 / 105% of plain BPR-MF at "
        "1/16, 1/8 and 1/4 and beats the retrained model overall at every budget, but not on "
        "the tail.",
        "`scenarios/ml1m-rule-centralized.yaml` as shipped (seeds 0, 1, 2; about 3 minutes "
        "each): RULE with the evolution search and greedy, uniform and random beside it, each "
        "verified on validation (the searched, the largest uniform and the popularity-fit "
        "configurations), plain BPR-MF with the same search, and BPR-MF retrained at the "
        "dimension of equal memory. Plain BPR-MF scores 0.0505, so RULE keeps 86.1 / 101 / "
        "105% of it at 1/16, 1/8 and 1/4 (targets 82 / 90 / 95%). It beats the retrained model "
        "overall at every budget (0.0435 / 0.0510 / 0.0532 against 0.0325 / 0.0427 / "
        "0.0474 at 1/16, 1/8, 1/4), but not on tail NDCG@20 (0.0003 / 0.0017 / 0.0063 against "
        "0.0031 / 0.0093 / 0.0163). Against plain BPR-MF with the same search it wins in every "
        "seed at 1/16 (+0.0009 to +0.0037) and at 1/4 (+0.0019 to +0.0027), but at 1/8 in one "
        "seed of three (+0.0055, -0.0005, -0.0008). At 1/4 the verified uniform configuration "
        "(0.0540) tests above the evolution's verified choice (0.0532): seed 1's validation "
        "chose another candidate, which tests at 0.0515 against 0.0539.",
        (
            "sweep scenarios/ml1m-rule-centralized.yaml --grid train.sampling=sandwich "
            "--seeds 0,1,2 --out {out}",
        ),
        ("quality_vs_memory.csv",),
        ("quality_vs_memory.png",),
    ),
    Study(
        "optimisers-sgd",
        "Server optimisers on the ML-1M fleet with its current defaults (3 seeds)",
        "FedAvg reaches 95% of the best validation soonest (72 rounds, 85 s) and tests best "
        "(0.0484 over the fleet), so it stays the server default.",
        "`scenarios/ml1m-fleet.yaml` as shipped (full mode, devices on plain SGD at `local_lr` "
        "8, 120 rounds, 25% of 6,040 devices per round), validated every 5 rounds, with each "
        "server optimiser on the row/block-sparse aggregate: FedAvg (server lr 1, the "
        "default), FedAvgM (lr 0.1, momentum 0.9: an effective step of 1), FedAdam and FedYogi "
        "at lr 0.01 (beta1 0.9, beta2 0.99, tau 1e-3; the table's entries average 0.12 in "
        "absolute value), and FedAdam at 0.003 in seed 0 only. `speed.csv` gives the rounds "
        "and training seconds until validation first reached 95% of the best that any of them "
        "reached with the same seed: FedAvg in 72 rounds (85 s) on average and in every seed, "
        "FedAvgM in 83 (98 s), FedAdam and FedYogi in 90 (105 and 109 s) in two seeds of "
        "three, FedAdam at 0.003 in 115 (seed 0). FedAvg also has the best validation "
        "(0.0512 against 0.0493-0.0497) and the best test NDCG@20 over the fleet (0.0484 "
        "against 0.0481 FedAdam, 0.0480 FedYogi, 0.0476 FedAvgM), within the seeds' spread: "
        "the adaptive optimisers rise more slowly early (seed 0: 0.0235 against 0.0290 at "
        "round 10) and do not end higher, so FedAvg stays the default. In seed 0 all five "
        "peak at round 95: every run draws the same devices. Seed 0's FedAvg run was repeated "
        "alone: the first, with a test suite running beside it for a minute, took 194 s to "
        "train against 162 s, with the same figures.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.server_optimizer,"
            "federated.server_lr,federated.server_momentum=[fedavg,1,0.9],[fedavgm,0.1,0.9],"
            "[fedadam,0.01,0.9],[fedyogi,0.01,0.9],[fedadam,0.003,0.9]' --seeds 0 "
            "--set federated.eval_every=5 --out {out}",
            "sweep scenarios/ml1m-fleet.yaml --grid 'federated.server_optimizer,"
            "federated.server_lr,federated.server_momentum=[fedavg,1,0.9],[fedavgm,0.1,0.9],"
            "[fedadam,0.01,0.9],[fedyogi,0.01,0.9]' --seeds 1,2 "
            "--set federated.eval_every=5 --out {out}",
        ),
        ("summary.csv", "speed.csv"),
        ("curves.png",),
        only_all=True,
    ),
    Study(
        "fleet-budgeted-two-negatives",
        "Budgeted mode with two negatives per positive (the ML-1M fleet, 3 seeds)",
        "Two negatives in budgeted mode lose: 87.3% of centralised RULE on the same devices "
        "against 91.2% with 4, though training is 44% faster.",
        "The budgeted variant as the scenario's header advises, but with 2 sampled negatives "
        "per positive, as full mode trains, instead of 4 (the advice dates from entry-wise "
        "Adam). 0.0384 / 0.0426 / 0.0462 / 0.0497 per tier, 0.0441 ± 0.0002 overall, against "
        "0.0378 / 0.0456 / 0.0487 / 0.0529 and 0.0461 ± 0.0020 with 4 (`paired-reference`, "
        "seeds 0-2). On each tier's own devices against centralised RULE (`paired.csv` of a "
        "report over both and `paired-reference`'s centralised runs): 97.2 / 82.2 / 83.8 / "
        "89.3%, 87.3% overall, against 95.5 / 88.1 / 88.7 / 95.0% and 91.2%. Training is 44% "
        "faster (242 s against 433 s per seed) but every tier above the watch loses, so the "
        "header keeps 4 negatives for budgeted mode.",
        (
            "sweep scenarios/ml1m-fleet.yaml --grid train.negatives=2 "
            "--set federated.mode=budgeted --set federated.refit_every=0 "
            "--set federated.start_config=popularity --set search.verify_per_budget=true "
            "--set federated.personalize_epochs=1 --set train.sampling=sandwich "
            "--set train.lambda_div=0.01 --seeds 0,1,2 --out {out}",
        ),
        ("summary.csv",),
        ("tiers.png",),
        only_all=True,
    ),
    Study(
        "privacy-utility",
        "Privacy–utility: client-level DP on 100,000 devices",
        "On 100,000 synthetic devices DP-FedAvg at target epsilon 1 to 8 costs no test NDCG@20 "
        "(0.107 to 0.111 against 0.103 without DP) but lowers recall@20 (0.167 to 0.175 against"
        " 0.196).",
        "`scenarios/synthetic-100k.yaml` (100,000 devices, 50,000 items, 10,000 devices per "
        "round, Poisson-sampled under DP) for 30 rounds, without DP and with DP-FedAvg at "
        "target ε 1, 2, 4, 8 (δ = 1e-5 = 1/devices, adaptive clipping to the median norm); ε "
        "covers training only (the count and labels are not noised in these runs).",
        (
            f"run scenarios/synthetic-100k.yaml --set federated.rounds=30 {LABELLING} "
            "--set name=s100k-nonprivate -q --out {out}",
            "sweep scenarios/synthetic-100k.yaml --grid privacy.target_epsilon=1,2,4,8 "
            f"--set federated.rounds=30 {DP} {LABELLING} --out {{out}}",
        ),
        ("summary.csv",),
        ("privacy.png",),
        only_all=True,
    ),
    Study(
        "audit",
        "Leakage audit: what the server infers, per defence",
        "Without a defence the server tells a device's items from its upload (strongest attack "
        "AUC 1.0); only local DP brings every upload attack to chance (AUC 0.53), at a large "
        "cost in quality (NDCG@20 0.030-0.038 against 0.204).",
        "`scenarios/privacy-audit.yaml` (400 synthetic devices, one per message, 10 rounds): "
        "each attack's AUC at telling a device's training items from the rest of the catalogue "
        "(mean over rounds), the test-rank attack on the per-device test reports, and test "
        "NDCG@20, for no defence, decoys, dense uploads, central DP and local DP.",
        (
            "sweep scenarios/privacy-audit.yaml --grid 'privacy={audit: true},"
            "{audit: true, decoys: 1},{audit: true, decoys: 4},{audit: true, dense: true},"
            "{audit: true, clip: 0.5, target_epsilon: 8},"
            "{audit: true, clip: 0.5, dense: true, local_noise_multiplier: 1},"
            "{audit: true, clip: 0.5, dense: true, local_noise_multiplier: 4}' --out {out}",
        ),
        ("audit.csv",),
        ("audit.png",),
    ),
)


def run_study(study: Study) -> None:
    out = RUNS / study.name
    out.mkdir(parents=True, exist_ok=True)
    for command in study.commands:
        args = shlex.split(command.replace("{out}", str(out)))
        if args[0] == "sweep":
            existing = [p for p in sorted(out.glob("*-sweep-*")) if _same_grid(p, args)]
            if existing:  # resume: finished runs are kept
                args = ["sweep", "--resume", str(existing[-1])]
        elif args[0] == "run" and _finished_run(out, args):
            continue
        print("+ fedrule", shlex.join(args), flush=True)
        subprocess.run([sys.executable, "-m", "fedrule", *args], cwd=ROOT, check=False)


def _same_grid(sweep: Path, args: list[str]) -> bool:
    """Was the sweep folder made by this command (same grid keys and values, and the same
    seeds where the command names them)?"""
    try:
        plan = json.loads((sweep / "sweep.json").read_text(encoding="utf-8"))["plan"]
    except (OSError, ValueError, KeyError):
        return False
    grid = [f"{axis['key']}={','.join(axis['values'])}" for axis in plan["grid"]]
    asked = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--grid"]
    seeds = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--seeds"]
    same_seeds = not seeds or [int(x) for x in seeds[-1].split(",")] == plan.get("seeds")
    return grid == asked and same_seeds


def _finished_run(out: Path, args: list[str]) -> bool:
    names = [a.split("=", 1)[1] for a in args if a.startswith("name=")]
    return bool(names) and any(out.glob(f"{names[0]}-*/metrics.json"))


def report(study: Study) -> Path:
    target = DOCS / study.name
    subprocess.run(
        [sys.executable, "-m", "fedrule", "report", str(RUNS / study.name), "--out", str(target)],
        cwd=ROOT,
        check=True,
    )
    return target


INTRO = (
    "Budgeted-mode runs before `fleet-budgeted-popularity` kept the round whose full "
    "configuration validated best; budgeted validation now measures what each budget's "
    "devices train, so re-running those commands keeps other rounds and gives other "
    "figures.",
    "Verification (`search.verify`) measures each budget's popularity fit beside its "
    "searched and uniform configurations since `paired-reference`. The studies above it "
    "ran without that candidate, except the centralised `popular-sampling`; re-running "
    "their commands can choose other configurations at 1/4 and above and give other "
    "figures.",
)


def page() -> str:
    """The results page: an index of the studies with their findings, then each study."""
    shown = [s for s in STUDIES if (DOCS / s.name / "report.md").is_file()]
    lines = [
        "# Results",
        "",
        "<!-- generated by `python benchmarks/results.py --no-run` from the CSVs in "
        "docs/results/<study>/: do not edit -->",
        "",
        "Generated by `python benchmarks/results.py` from the runs below, on a 2-core CPU "
        "machine (`train_seconds` is wall-clock and includes whatever else ran at the time). "
        "Each study's folder, `docs/results/<study>/`, holds its full report (`report.md`), "
        "with every table as CSV and every plot. NDCG@20 is measured on each device's (or "
        "user's) held-out last interaction; ± is the spread over seeds. The studies are in "
        "the order they were run, and each one's settings are in its commands: later studies "
        "changed the shipped scenarios, so earlier ones pin what has changed since.",
        "",
        *[line for paragraph in INTRO for line in (paragraph, "")],
        "## Studies",
        "",
        "| study | finding |",
        "|---|---|",
        *[f"| [{s.title}](#{s.name}) | {s.finding} |" for s in shown],
        "",
    ]
    for study in shown:
        folder = DOCS / study.name
        lines += [f'<a id="{study.name}"></a>', "", f"## {study.title}", ""]
        lines += [f"**`{study.name}`**: {study.finding}", "", study.what, "", "```bash"]
        here = f"runs/results/{study.name}"
        lines += ["fedrule " + c.replace("{out}", here) for c in study.commands]
        lines += ["```", ""]
        for table in study.tables:
            lines += [_compact(folder / table, study.only_all), ""]
        for plot in study.plots:
            if (folder / plot).is_file():
                lines += [f"![{study.name}: {plot}]({study.name}/{plot})", ""]
        lines += [f"The full report: [{study.name}/report.md]({study.name}/report.md).", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Headline:
    """README's headline table: the tiers of one fleet, each against centralised RULE at its
    budget, from one study's ``paired.csv``; its finding is the study's."""

    study: str
    scenario: str  # the fleet's scenario, for the tiers' budgets
    columns: tuple[tuple[str, str, str], ...]  # (heading, the report's group, ratio column)


FULL, BUDGETED = "personalize_epochs=0, refit_every=10, sampling=popular", "lambda_div-0.01"
HEADLINE = Headline(
    "paired-reference",
    "scenarios/ml1m-fleet.yaml",
    (
        ("full mode (`ml1m-fleet.yaml`)", FULL, "ratio"),
        ("full mode, every device", FULL, "every_device_ratio"),
        ("budgeted mode (`ml1m-fleet-budgeted.yaml`)", BUDGETED, "ratio"),
    ),
)


def headline(spec: Headline = HEADLINE) -> str:
    """README's block between the headline markers."""
    from fedrule.units import format_bytes

    (study,) = [s for s in STUDIES if s.name == spec.study]
    with open(DOCS / spec.study / "paired.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by = {(row["group"], row["tier"]): row for row in rows}
    scenario = yaml.safe_load((ROOT / spec.scenario).read_text(encoding="utf-8"))
    budgets = {tier["name"]: str(tier["budget"]) for tier in scenario["fleet"]["tiers"]}
    metric = scenario["eval"]["metric"]
    first = spec.columns[0][1]
    tiers = [tier for group, tier in by if group == first]
    lines = [
        BEGIN,
        study.finding,
        "",
        f"| tier | budget | centralised RULE | {' | '.join(c[0] for c in spec.columns)} |",
        "|---|---|---|" + "---|" * len(spec.columns),
    ]
    for tier in tiers:
        reference = by[first, tier][f"reference_{metric}"]
        budget_bytes = by[first, tier]["budget_bytes"]
        if budget_bytes:
            budget = f"{budgets[tier]} ({format_bytes(float(budget_bytes))})"
        else:  # the whole fleet, each device at its own budget
            budget = "its own"
        cells = [tier if tier != "all" else "all tiers", budget, f"{float(reference):.4f}"]
        for _, group, ratio in spec.columns:
            row = by[group, tier]
            if row[f"reference_{metric}"] != reference:
                raise SystemExit(f"{spec.study}: the groups' {tier} tiers hold other devices")
            if not row[ratio]:  # the whole fleet has no every-device figure
                cells.append("")
                continue
            share = f"{100 * float(row[ratio]):.1f} ± {100 * float(row[ratio + '_std']):.1f}%"
            if ratio == "ratio":
                cells.append(f"{float(row[metric]):.4f} ({share})")
            else:
                cells.append(share)
        lines.append("| " + " | ".join(cells) + " |")
    seeds = " or ".join(sorted({row["seeds"] for row in rows}))
    lines += [
        "",
        f"Test {metric.upper()} on each device's held-out last interaction, mean over {seeds} "
        "seeds of the ML-1M fleet (6,040 devices); centralised RULE is measured at the tier's "
        "budget on the same devices, and in brackets is the tier's share of it, ± its spread "
        "over seeds. *Every device*: the tier's configuration tested on every device against "
        "centralised RULE's on every user, the precise figure in full mode, where every device "
        "trains alike. Generated by `benchmarks/results.py` from the study "
        f"[`{spec.study}`](docs/results/README.md#{spec.study}).",
        END,
    ]
    return "\n".join(lines)


DROPPED = {"engine", "seeds", "count_auc"}  # the same in every row of these studies


def _compact(path: Path, only_all: bool = False) -> str:
    """A report's table (its CSV), without the columns that say the same in every row (and
    with ``only_all`` only the whole fleet's rows, without the per-tier budget)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    columns = list(rows[0]) if rows else []
    dropped = set(DROPPED)
    if only_all and "tier" in columns:
        rows = [row for row in rows if row["tier"] == "all"]
        dropped |= {"tier", "budget_bytes"}
    shown = [c for c in columns if c not in dropped and any(r[c] is not None for r in rows)]
    return markdown_table(rows, shown).strip()


def _value(text: str) -> object:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def write_readme(text: str) -> None:
    README.write_text(_with_headline(README.read_text(encoding="utf-8"), text), encoding="utf-8")


def _with_headline(readme: str, text: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
    head, rest = readme.split(BEGIN, 1)
    return head + text + rest.split(END, 1)[1]


def stale() -> list[str]:
    """The generated pages that differ from what the committed CSVs give."""
    out = []
    if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != page():
        out.append(str(PAGE.relative_to(ROOT)))
    readme = README.read_text(encoding="utf-8")
    if _with_headline(readme, headline()) != readme:
        out.append("README.md (headline block)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated study names")
    parser.add_argument("--no-run", action="store_true", help="reports and pages only")
    parser.add_argument("--check", action="store_true", help="write nothing; 1 if stale")
    args = parser.parse_args()
    if args.check:
        if pages := stale():
            sys.exit(f"stale: {', '.join(pages)}; run python benchmarks/results.py --no-run")
        print("docs/results/README.md and README's headline are current")
        return
    chosen = [s for s in STUDIES if not args.only or s.name in args.only.split(",")]
    for study in chosen:
        if not args.no_run:
            run_study(study)
        if any(RUNS.joinpath(study.name).rglob("metrics.json")):
            report(study)
    PAGE.write_text(page(), encoding="utf-8")
    write_readme(headline())
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(STUDIES)} studies) and README's headline")


if __name__ == "__main__":
    main()
