"""Who holds what: the payloads of a phase, the server table each is cut from, and per device
which payload it receives.

The server's tables are stacked row-wise (``fedrule.algorithm.tables``). Devices never see the
stacking: each receives a payload cut from its table and answers with row ids; the server adds
its table's row offset when it aggregates. Each method builds its assignments
(``fedrule.algorithm.methods``) from the pieces here: ``Assignment.one_table`` (one
configuration per distinct budget, or one for everyone), ``uniform_prefixes`` (the largest
uniform prefix of blocks that fits each budget, or each tier's smallest budget from the tier's
own table) and ``per_tier_tables`` (each tier its own table, whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.algorithm.tables import ServerTables
from fedrule.model.codecs.dense import SINGLE_CONFIG
from fedrule.model.elastic import ElasticLayout
from fedrule.search import customize


@dataclass(frozen=True, eq=False)
class Assignment:
    """Per distinct payload its configuration and the server table it is cut from; per device
    (fleet order) the payload it receives."""

    configs: list[np.ndarray]
    config_of_device: np.ndarray
    table_of_config: np.ndarray

    @staticmethod
    def one_table(configs: list[np.ndarray], config_of_device: np.ndarray) -> Assignment:
        return Assignment(
            configs, np.asarray(config_of_device, np.int64), np.zeros(len(configs), np.int64)
        )

    @staticmethod
    def everyone(config: np.ndarray, num_devices: int) -> Assignment:
        """Every device the same configuration of the one table."""
        return Assignment.one_table([config], np.zeros(num_devices, np.int64))

    @property
    def per_table(self) -> bool:
        """Do the payloads come from more than one table (cohorts must not mix them)?"""
        return np.unique(self.table_of_config).size > 1

    def table_of_device(self, devices: np.ndarray) -> np.ndarray:
        return self.table_of_config[self.config_of_device[devices]]

    def payloads(self, tables: ServerTables, table: np.ndarray) -> list[bytes]:
        """Every payload, encoded from its table (a block of rows of the server's ``table``)."""
        return [
            tables.payload(table, int(t), config)
            for config, t in zip(self.configs, self.table_of_config, strict=True)
        ]

    def split(self, cohorts: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """The cohorts cut so that each holds the devices of one table (kept as they are with
        one table), and each cohort's table."""
        if not self.per_table:
            return list(cohorts), np.full(len(cohorts), self.table_of_config[0], np.int64)
        out: list[np.ndarray] = []
        tables: list[int] = []
        for cohort in cohorts:
            of = self.table_of_device(cohort)
            for t in np.unique(of):
                out.append(cohort[of == t])
                tables.append(int(t))
        return out, np.asarray(tables, dtype=np.int64)


def uniform_prefixes(
    codec: ElasticLayout, budget_bytes: np.ndarray, tier: np.ndarray, per_tier: bool
) -> Assignment:
    """Every distinct budget's largest uniform prefix, from one table (nested); or
    (``per_tier``) every tier's largest uniform prefix within its smallest budget, from the
    tier's table."""
    if not per_tier:
        budgets, index = np.unique(budget_bytes, return_inverse=True)
        configs = [customize.uniform_fit(codec, int(b)) for b in budgets]
        return Assignment.one_table(configs, index.astype(np.int64))
    tiers, index = np.unique(tier, return_inverse=True)
    configs = [customize.uniform_fit(codec, int(budget_bytes[tier == t].min())) for t in tiers]
    return Assignment(configs, index.astype(np.int64), tiers.astype(np.int64))


def per_tier_tables(tier: np.ndarray) -> Assignment:
    """Each tier's devices receive their tier's table, whole (hashing, qr)."""
    tiers, index = np.unique(tier, return_inverse=True)
    configs = [SINGLE_CONFIG.copy() for _ in tiers]
    return Assignment(configs, index.astype(np.int64), tiers.astype(np.int64))
