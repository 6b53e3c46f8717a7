"""Parsers for interaction files: RecBole ``.inter``, GroupLens ``u.data`` / ``ratings.dat``
(plain or inside the official zip), and delimited text (CSV/TSV) with named or numbered columns.

All parsers keep rows in file order and build ids by first appearance. Parsing is plain
Python string splitting plus numpy conversion: ML-1M (1M rows) reads in about a second.
"""

from __future__ import annotations

import csv as csv_module
import io
import zipfile
from operator import methodcaller
from pathlib import Path

from fedrule.data.interactions import Interactions, from_columns
from fedrule.errors import DataError, did_you_mean

CSV_KEYS = ("sep", "header", "user", "item", "rating", "timestamp")
GROUPLENS_MEMBERS = ("u.data", "ratings.dat")


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _read_text(path: Path) -> str:
    try:
        return _decode(path.read_bytes())
    except FileNotFoundError:
        raise DataError("file not found", path=str(path), hint="check the dataset path") from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror})", path=str(path)) from None


def _split_rows(text: str, sep: str, n_cols: int, path: str, first_line: int) -> list:
    """Split ``text`` (lines of ``sep``-separated fields) into columns (lists of str).

    Fast path when every line has ``n_cols - 1`` separators: one ``split`` over the joined
    text. Otherwise a slow pass skips blank lines and reports the first ragged line.
    """
    body = text.rstrip("\n")
    if not body:
        raise DataError("no interactions found", path=path, hint="the file has no data rows")
    lines = body.split("\n")
    if set(map(methodcaller("count", sep), lines)) == {n_cols - 1}:
        flat = sep.join(lines).split(sep)
        return [flat[i::n_cols] for i in range(n_cols)]
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_cols:
            raise DataError(
                f"line {first_line + i} has {len(fields)} fields, expected {n_cols}",
                path=path,
                hint=f"fields are separated by {sep!r}",
            )
        rows.append(fields)
    return [list(col) for col in zip(*rows, strict=True)]


def read_inter(path: Path, *, name: str | None = None, text: str | None = None) -> Interactions:
    """A RecBole atomic ``.inter`` file: tab-separated with a ``field:type`` header."""
    where = str(path)
    text = _read_text(path) if text is None else text
    first, _, body = text.partition("\n")
    header = [h.split(":", 1)[0].strip() for h in first.split("\t")]
    position = {h: i for i, h in enumerate(header)}
    for needed in ("user_id", "item_id"):
        if needed not in position:
            raise DataError(
                f"the .inter header has no '{needed}' field",
                path=where,
                hint="expected user_id:token, item_id:token[, rating:float][, timestamp:float]",
            )
    cols = _split_rows(body, "\t", len(header), where, first_line=2)
    rating = position.get("rating")
    ts = position.get("timestamp")
    return from_columns(
        cols[position["user_id"]],
        cols[position["item_id"]],
        None if rating is None else cols[rating],
        None if ts is None else cols[ts],
        name=name or path.stem,
        path=where,
    )


def _grouplens_from_text(text: str, where: str, name: str | None, kind: str) -> Interactions:
    sep = "::" if kind == "ratings.dat" else "\t"
    cols = _split_rows(text, sep, 4, where, first_line=1)
    default = "ml-1m" if kind == "ratings.dat" else "ml-100k"
    return from_columns(cols[0], cols[1], cols[2], cols[3], name=name or default, path=where)


def read_grouplens(path: Path, *, name: str | None = None) -> Interactions:
    """An official GroupLens file: ``ml-100k.zip``/``ml-1m.zip``, ``u.data`` or ``ratings.dat``.

    ``u.data`` is tab-separated ``user item rating timestamp`` without header; ``ratings.dat``
    is ``user::item::rating::timestamp``. A RecBole ``.inter`` file is accepted too.
    """
    where = str(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] in GROUPLENS_MEMBERS]
            if not members:
                raise DataError(
                    "the zip holds neither u.data nor ratings.dat",
                    path=where,
                    hint="expected the official ml-100k.zip or ml-1m.zip from GroupLens",
                )
            member = min(members, key=len)
            text = _decode(zf.read(member))
        return _grouplens_from_text(text, f"{where}:{member}", name, member.rsplit("/", 1)[-1])
    text = _read_text(path)
    first = text.split("\n", 1)[0]
    if ":token" in first or ":float" in first:
        return read_inter(path, name=name, text=text)
    if "::" in first:
        return _grouplens_from_text(text, where, name, "ratings.dat")
    if "\t" in first:
        return _grouplens_from_text(text, where, name, "u.data")
    raise DataError(
        "unrecognized GroupLens format",
        path=where,
        hint="expected u.data (tab-separated), ratings.dat ('::'-separated) or the official zip",
    )


def _column_index(key: str, spec: object, header: list[str] | None, n_cols: int, where: str) -> int:
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise DataError(
            f"expected a column name or a 0-based column number, got {spec!r}", path=f"csv.{key}"
        )
    if isinstance(spec, int):
        if not 0 <= spec < n_cols:
            raise DataError(
                f"column {spec} (csv.{key}) is out of range",
                path=where,
                hint=f"the file has {n_cols} columns, numbered from 0",
            )
        return spec
    if header is None:
        raise DataError(
            f"column '{spec}' (csv.{key}) given by name but csv.header is false",
            path=where,
            hint="use a 0-based column number, or set header: true",
        )
    if spec not in header:
        raise DataError(
            f"column '{spec}' (csv.{key}) not found",
            path=where,
            hint="columns are: " + ", ".join(header),
        )
    return header.index(spec)


def read_csv(path: Path, options: dict | None = None, *, name: str | None = None) -> Interactions:
    """Delimited text. Options: ``sep`` (default ","), ``header`` (default true), ``user`` and
    ``item`` (column names or 0-based numbers; default columns 0 and 1), optional ``rating``
    and ``timestamp`` (timestamps must be whole numbers; "881250949.0" is accepted).
    """
    options = dict(options or {})
    for key in options:
        if key not in CSV_KEYS:
            raise DataError(
                f"unknown csv option '{key}'", path=f"csv.{key}", hint=did_you_mean(key, CSV_KEYS)
            )
    sep = options.get("sep", ",")
    header_flag = options.get("header", True)
    if not isinstance(sep, str) or not sep:
        raise DataError(f"expected a non-empty separator string, got {sep!r}", path="csv.sep")
    if not isinstance(header_flag, bool):
        raise DataError(f"expected true or false, got {header_flag!r}", path="csv.header")
    where = str(path)
    text = _read_text(path)
    if len(sep) == 1:
        rows = [r for r in csv_module.reader(io.StringIO(text), delimiter=sep) if r]
    else:
        rows = [ln.split(sep) for ln in text.split("\n") if ln]
    header = [h.strip() for h in rows[0]] if header_flag and rows else None
    body = rows[1:] if header_flag else rows
    if not body:
        raise DataError("no interactions found", path=where, hint="the file has no data rows")
    n_cols = len(header) if header is not None else len(body[0])
    index = {
        key: _column_index(key, options.get(key, default), header, n_cols, where)
        for key, default in (("user", 0), ("item", 1), ("rating", None), ("timestamp", None))
        if options.get(key, default) is not None
    }
    need = max(index.values()) + 1
    short = next((i for i, r in enumerate(body) if len(r) < need), None)
    if short is not None:
        line = short + (2 if header_flag else 1)
        raise DataError(
            f"line {line} has {len(body[short])} fields, expected at least {need}",
            path=where,
            hint=f"fields are separated by {sep!r} (csv.sep)",
        )
    columns = {key: [r[i].strip() for r in body] for key, i in index.items()}
    label = {key: header[i] if header is not None else f"column {i}" for key, i in index.items()}
    return from_columns(
        columns["user"],
        columns["item"],
        columns.get("rating"),
        columns.get("timestamp"),
        name=name or path.stem,
        path=where,
        rating_column=label.get("rating", "rating"),
        timestamp_column=label.get("timestamp", "timestamp"),
    )
