"""Parsers for interaction files: RecBole ``.inter``, GroupLens ``u.data`` / ``ratings.dat``
(plain or inside the official zip), and delimited text (CSV/TSV) with named or numbered columns.

All parsers keep rows in file order and build ids by first appearance. A row whose user or item
id is missing (empty, ``NaN``, ``NA``, ``null``, ``None``: ``interactions.MISSING_IDS``) is an
error naming the file and line, never a user or item of that name: a missing id cannot be
dropped silently without changing which users and items the data holds. Parsing is plain
Python string splitting plus numpy conversion: ML-1M (1M rows) reads in about a second.
"""

from __future__ import annotations

import csv as csv_module
import io
import re
import zipfile
from collections.abc import Callable
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


def _split_rows(
    text: str, sep: str, n_cols: int, path: str, first_line: int
) -> tuple[list, Callable[[int], int]]:
    """Split ``text`` (lines of ``sep``-separated fields) into columns (lists of str); also
    returns the file line of each row.

    Fast path when every line has ``n_cols - 1`` separators: one ``split`` over the joined
    text. Otherwise a slow pass skips blank lines and reports the first ragged line.
    """
    body = text.rstrip("\n")
    if not body:
        raise DataError("no interactions found", path=path, hint="the file has no data rows")
    lines = body.split("\n")
    if set(map(methodcaller("count", sep), lines)) == {n_cols - 1}:
        flat = sep.join(lines).split(sep)
        return [flat[i::n_cols] for i in range(n_cols)], lambda row: first_line + row
    rows, kept = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        kept.append(first_line + i)
        fields = line.split(sep)
        if len(fields) != n_cols:
            raise DataError(
                f"line {first_line + i} has {len(fields)} fields, expected {n_cols}",
                path=path,
                hint=f"fields are separated by {sep!r}",
            )
        rows.append(fields)
    return [list(col) for col in zip(*rows, strict=True)], kept.__getitem__


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
    cols, line_of = _split_rows(body, "\t", len(header), where, first_line=2)
    rating = position.get("rating")
    ts = position.get("timestamp")
    return from_columns(
        cols[position["user_id"]],
        cols[position["item_id"]],
        None if rating is None else cols[rating],
        None if ts is None else cols[ts],
        name=name or path.stem,
        path=where,
        line_of=line_of,
    )


def _grouplens_from_text(text: str, where: str, name: str | None, kind: str) -> Interactions:
    sep = "::" if kind == "ratings.dat" else "\t"
    cols, line_of = _split_rows(text, sep, 4, where, first_line=1)
    default = "ml-1m" if kind == "ratings.dat" else "ml-100k"
    return from_columns(
        cols[0], cols[1], cols[2], cols[3], name=name or default, path=where, line_of=line_of
    )


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


SEP_NAMES = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": " ",
}
SNIFFED_SEPS = ("\t", ",", ";", "|", "::", " ")
SNIFF_LINES = 50
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TIME_NAME = re.compile(r"time|date|^ts$|^t$|^when$", re.IGNORECASE)


def sep_name(sep: str) -> str:
    """How a separator is written back to the user: tab, space, or the quoted string."""
    return {"\t": "tab", " ": "space"}.get(sep, repr(sep))


def normalize_sep(value: object, key: str = "data.csv.sep") -> str | None:
    """A separator option as the string to split on: ``tab`` and ``\\t`` (a backslash and a t,
    what YAML's single quotes keep) mean a tab; also ``comma``, ``semicolon``, ``pipe``, ``space``.
    ``None`` stays ``None`` (sniffed from the file)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DataError(
            f"expected a non-empty separator string, got {value!r}",
            path=key,
            hint="for example ',', ';', '|' or tab",
        )
    return SEP_NAMES.get(value.strip().lower(), value) if value.strip() else value


def _setting(keys: str, key: str, value: str) -> str:
    """How to set an option: ``data.csv.sep: tab`` in a scenario, ``--sep tab`` on the CLI."""
    return f"--{key} {value}" if keys == "--" else f"{keys}{key}: {value}"


def _fields(line: str, sep: str) -> list[str]:
    if len(sep) == 1:
        return next(csv_module.reader([line], delimiter=sep), [])
    return line.split(sep)


def _sniff_sep(lines: list[str], where: str, keys: str) -> str:
    """The first of ``SNIFFED_SEPS`` that splits every sampled line into the same number (>= 2)
    of fields; else the one that splits every line into at least 2 fields."""
    counts = {sep: {len(_fields(line, sep)) for line in lines} for sep in SNIFFED_SEPS}
    for sep in SNIFFED_SEPS:
        if len(counts[sep]) == 1 and min(counts[sep]) >= 2:
            return sep
    for sep in SNIFFED_SEPS:
        if min(counts[sep]) >= 2:
            return sep
    raise DataError(
        "cannot tell the column separator: the first lines hold no tab, ',', ';', '|' or '::'",
        path=where,
        hint=f"set {_setting(keys, 'sep', '...')}",
    )


def _is_number(value: str) -> bool:
    return _NUMBER.fullmatch(value.strip()) is not None


def _sniff_header(rows: list[list[str]], named: bool) -> bool:
    """Whether the first row names the columns: yes when columns are chosen by name, or when a
    column that is numeric in the next rows is not numeric in the first; no when the first row
    is all numbers or repeats a value of the rows below; yes otherwise."""
    if named or len(rows) < 2:
        return named or not all(_is_number(v) for v in rows[0])
    first, rest = rows[0], rows[1 : SNIFF_LINES + 1]
    for j, value in enumerate(first):
        column = [r[j] for r in rest if j < len(r)]
        if column and all(map(_is_number, column)) and not _is_number(value):
            return True
    if all(_is_number(v) for v in first):
        return False
    for j, value in enumerate(first[:2]):  # an id seen again below is data, not a name
        if any(j < len(r) and r[j].strip() == value.strip() for r in rest):
            return False
    return True


def _sep_hint(sep: str, sample: list[str], keys: str) -> str:
    """The hint of a column-count error: which separator was used, and a better one if the
    lines hold one."""
    hint = f"fields are separated by {sep_name(sep)} ({keys}sep)"
    for other in SNIFFED_SEPS:
        if other == sep or other == " ":
            continue
        if sample and all(other in line for line in sample):
            name = {"\t": "tabs", ",": "commas", ";": "semicolons", "|": "'|'"}.get(other, "'::'")
            value = "tab" if other == "\t" else f"'{other}'"
            return f"{hint}; the lines contain {name}: set {_setting(keys, 'sep', value)}"
    return hint


def _looks_like_time(label: str, values: list[str], by_name: bool) -> bool:
    if by_name and _TIME_NAME.search(label):
        return True
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return False
    # whole seconds (or milliseconds) since 1973
    return bool(numbers) and all(v.is_integer() and 1e8 <= v < 1e13 for v in numbers)


def _column_index(
    key: str, spec: object, header: list[str] | None, n_cols: int, where: str, ctx: dict
) -> int:
    keys = ctx["keys"]
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise DataError(
            f"expected a column name or a 0-based column number, got {spec!r}", path=f"{keys}{key}"
        )
    if isinstance(spec, str) and spec.strip().isdigit() and (header is None or spec not in header):
        spec = int(spec)
    if isinstance(spec, int):
        if not 0 <= spec < n_cols:
            raise DataError(
                f"column {spec} ({keys}{key}) is out of range: the file has {n_cols} "
                f"column{'s' if n_cols != 1 else ''}, numbered from 0",
                path=where,
                hint=_sep_hint(ctx["sep"], ctx["sample"], keys),
            )
        return spec
    if header is None:
        raise DataError(
            f"column '{spec}' ({keys}{key}) given by name but the file has no header line",
            path=where,
            hint=f"use a 0-based column number, or set {_setting(keys, 'header', 'true')}",
        )
    if spec not in header:
        hint = "columns are: " + ", ".join(header).replace("\t", "\\t")
        if len(header) == 1:
            hint += "; " + _sep_hint(ctx["sep"], ctx["sample"], keys)
        raise DataError(f"column '{spec}' ({keys}{key}) not found", path=where, hint=hint)
    return header.index(spec)


def read_csv(
    path: Path,
    options: dict | None = None,
    *,
    name: str | None = None,
    keys: str = "data.csv.",
    progress: Callable[[str], None] | None = None,
) -> Interactions:
    """Delimited text. Options: ``sep`` (``tab`` or ``\\t`` for tabs; sniffed when missing or
    None: tab, ',', ';', '|', '::', space), ``header`` (sniffed when missing or None),
    ``user`` and ``item`` (column names or 0-based numbers; default columns 0 and 1), optional
    ``rating`` and ``timestamp`` (timestamps must be whole numbers; "881250949.0" is accepted).

    ``keys`` prefixes option names in errors (``data.csv.`` in a scenario, ``--`` on the
    command line). ``progress`` receives one line saying how the file was read, and a warning
    when a column that is not used looks like a timestamp.
    """
    options = dict(options or {})
    for key in options:
        if key not in CSV_KEYS:
            raise DataError(
                f"unknown csv option '{key}'",
                path=f"{keys}{key}",
                hint=did_you_mean(key, CSV_KEYS),
            )
    sep = normalize_sep(options.get("sep"), f"{keys}sep")
    header_flag = options.get("header")
    if header_flag is not None and not isinstance(header_flag, bool):
        raise DataError(f"expected true or false, got {header_flag!r}", path=f"{keys}header")
    where = str(path)
    text = _read_text(path)
    sample = [ln for ln in text.split("\n", SNIFF_LINES + 1)[:SNIFF_LINES] if ln.strip()]
    if not sample:
        raise DataError("no interactions found", path=where, hint="the file has no data rows")
    how = {"sep": "", "header": ""}
    if sep is None:
        sep, how["sep"] = _sniff_sep(sample, where, keys), " (sniffed)"
    if len(sep) == 1:
        rows = [r for r in csv_module.reader(io.StringIO(text), delimiter=sep) if r]
    else:
        rows = [ln.split(sep) for ln in text.split("\n") if ln]
    if header_flag is None:
        named = any(
            isinstance(options.get(k), str) and not options[k].strip().isdigit()
            for k in ("user", "item", "rating", "timestamp")
        )
        header_flag, how["header"] = _sniff_header(rows, named), " (sniffed)"
    header = [h.strip() for h in rows[0]] if header_flag and rows else None
    body = rows[1:] if header_flag else rows
    if not body:
        raise DataError("no interactions found", path=where, hint="the file has no data rows")
    n_cols = len(header) if header is not None else len(body[0])
    ctx = {"keys": keys, "sep": sep, "sample": sample}
    index = {
        key: _column_index(key, options.get(key, default), header, n_cols, where, ctx)
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
            hint=_sep_hint(sep, sample, keys),
        )
    columns = {key: [r[i].strip() for r in body] for key, i in index.items()}
    label = {key: header[i] if header is not None else f"column {i}" for key, i in index.items()}
    if progress is not None:
        _describe(progress, where, sep, header, how, label, body, index, n_cols, keys)
    return from_columns(
        columns["user"],
        columns["item"],
        columns.get("rating"),
        columns.get("timestamp"),
        name=name or path.stem,
        path=where,
        rating_column=label.get("rating", "rating"),
        timestamp_column=label.get("timestamp", "timestamp"),
        line_of=lambda row: _csv_line(text, sep, row + (1 if header_flag else 0)),
    )


def _csv_line(text: str, sep: str, row: int) -> int:
    """The file line where non-empty row ``row`` (0-based, the header counted) starts, as
    ``read_csv`` reads rows (quoted fields may span lines)."""
    if len(sep) == 1:
        reader = csv_module.reader(io.StringIO(text), delimiter=sep)
        seen, line = -1, 1
        for fields in reader:
            if fields:
                seen += 1
                if seen == row:
                    return line
            line = reader.line_num + 1
        return line
    lines = [i for i, ln in enumerate(text.split("\n"), start=1) if ln]
    return lines[row]


def _describe(progress, where, sep, header, how, label, body, index, n_cols, keys) -> None:
    """One line on how a csv file was read, and a warning for an unused timestamp-like column."""
    used = "  ".join(f"{k}={v}" for k, v in label.items())
    progress(
        f"csv {where}: sep {sep_name(sep)}{how['sep']}, "
        f"header {'yes' if header is not None else 'no'}{how['header']}; {used}"
    )
    unused = [j for j in range(n_cols) if j not in index.values()]
    names = [header[j] if header is not None else f"column {j}" for j in unused]
    if unused:
        progress(f"csv columns not used: {', '.join(names)}")
    if "timestamp" in index:
        return

    def label_of(name: str) -> str:
        return f"column '{name}'" if header is not None else name

    for j, name in zip(unused, names, strict=True):
        values = [r[j].strip() for r in body[:SNIFF_LINES] if j < len(r)]
        if _looks_like_time(name, values, header is not None):
            spec = name if header is not None else str(j)
            progress(
                f"warning: {label_of(name)} looks like a timestamp, but {keys}timestamp is not "
                f"set: the split orders each user's interactions by a seeded shuffle, not by "
                f"time (set {_setting(keys, 'timestamp', spec)})"
            )
            return
