"""Sources, readers and the verified fetch (no network except the one slow test)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fedrule.data.fetch as fetch_module
from fedrule.data import DATASETS, Remote, load_dataset, load_source, resolve_data_dir
from fedrule.data.fetch import fetch_remote, pip_download
from fedrule.errors import DataError

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n"
    "186\t302\t3\t891717742.0\n"
    "196\t377\t1\t978300760\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- csv -------------------------------------------------------------------------------


def test_csv_with_header_named_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", 'ts,u,i,r\n5,alice,"x, y",4.5\n3,bob,z,1\n9,alice,z,2\n')
    d = load_dataset(
        "csv", path=str(f), csv={"user": "u", "item": "i", "rating": "r", "timestamp": "ts"}
    )
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.user.tolist() == [0, 1, 0]
    assert d.item.tolist() == [0, 1, 1]
    assert list(d.user_ids) == ["alice", "bob"]
    assert list(d.item_ids) == ["x, y", "z"]
    assert d.rating.dtype == np.float32 and d.rating.tolist() == [4.5, 1.0, 2.0]
    assert d.timestamp.dtype == np.int64 and d.timestamp.tolist() == [5, 3, 9]
    assert d.name == "log"


def test_csv_without_header_positions(tmp_path: Path) -> None:
    f = write(tmp_path / "log.tsv", "a\t10\t978300760\nb\t11\t881250949.0\na\t11\t1\n")
    d = load_dataset(
        "csv", path=f, csv={"sep": "\t", "header": False, "user": 0, "item": 1, "timestamp": 2}
    )
    assert d.user.tolist() == [0, 1, 0] and d.item.tolist() == [0, 1, 1]
    assert d.rating is None
    assert d.timestamp.dtype == np.int64
    assert d.timestamp.tolist() == [978300760, 881250949, 1]


def test_csv_missing_column_names_it(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "u,i\n1,2\n")
    with pytest.raises(DataError, match=r"column 'rating' \(data\.csv\.rating\) not found.*u, i"):
        load_dataset("csv", path=f, csv={"user": "u", "item": "i", "rating": "rating"})


def test_csv_missing_file_and_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as err:
        load_dataset("csv", path=tmp_path / "nope.csv")
    assert "nope.csv" in str(err.value)
    f = write(tmp_path / "log.csv", "u,i\n1,2\n")
    with pytest.raises(DataError, match="did you mean 'header'"):
        load_dataset("csv", path=f, csv={"headers": True})
    with pytest.raises(DataError, match="needs a file"):
        load_dataset("csv")


def test_fractional_timestamp_is_rejected(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "u,i,t\n1,2,881250949.5\n")
    with pytest.raises(DataError, match="not an integer timestamp"):
        load_dataset("csv", path=f, csv={"timestamp": "t"})


def test_large_timestamps_stay_exact(tmp_path: Path) -> None:
    big = 2**53 + 1  # not representable in float64, let alone float32
    f = write(tmp_path / "log.csv", f"u,i,t\n1,2,{big}\n1,3,{big}.0\n")
    d = load_dataset("csv", path=f, csv={"timestamp": "t"})
    assert d.timestamp.tolist() == [big, big]


# --- grouplens / .inter ----------------------------------------------------------------


def test_grouplens_u_data_and_zip(tmp_path: Path) -> None:
    rows = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n"
    d = load_dataset("grouplens", path=write(tmp_path / "u.data", rows))
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.timestamp.tolist() == [881250949, 891717742, 881250950]
    assert d.name == "ml-100k"
    z = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ml-100k/README", "readme")
        zf.writestr("ml-100k/u.data", rows)
    dz = load_dataset("grouplens", path=z)
    assert np.array_equal(dz.user, d.user) and np.array_equal(dz.timestamp, d.timestamp)


def test_grouplens_ratings_dat_and_zip(tmp_path: Path) -> None:
    rows = "1::1193::5::978300760\r\n1::661::3::978302109\r\n2::1193::4::978298413\r\n"
    d = load_dataset("grouplens", path=write(tmp_path / "ratings.dat", rows))
    assert d.user.tolist() == [0, 0, 1] and d.item.tolist() == [0, 1, 0]
    assert d.rating.tolist() == [5.0, 3.0, 4.0]
    assert d.timestamp.tolist() == [978300760, 978302109, 978298413]
    z = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", rows)
    assert load_dataset("grouplens", path=z).n_interactions == 3
    bad = tmp_path / "other.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("x.txt", "x")
    with pytest.raises(DataError, match=r"neither u\.data nor ratings\.dat"):
        load_dataset("grouplens", path=bad)


def test_ragged_line_is_reported(tmp_path: Path) -> None:
    f = write(tmp_path / "u.data", "1\t2\t3\t4\n1\t2\t3\n")
    with pytest.raises(DataError, match="line 2 has 3 fields, expected 4"):
        load_dataset("grouplens", path=f)


def test_inter_file_via_path(tmp_path: Path) -> None:
    d = load_dataset("ml-100k", path=write(tmp_path / "ml-100k.inter", INTER))
    assert d.timestamp.dtype == np.int64
    assert d.timestamp.tolist() == [881250949, 891717742, 978300760]
    assert list(d.user_ids) == ["196", "186"] and d.user.tolist() == [0, 1, 0]
    assert d.name == "ml-100k"


def test_unknown_dataset_suggests_nearest() -> None:
    assert set(DATASETS) == {"ml-100k", "ml-1m", "grouplens", "csv", "synthetic"}
    with pytest.raises(DataError, match="did you mean 'ml-1m'"):
        load_dataset("ml-1M")
    with pytest.raises(DataError, match="did you mean 'path'"):
        load_source({"name": "csv", "pth": "x"})


def test_load_source_synthetic() -> None:
    d = load_source({"name": "synthetic", "synthetic": {"n_users": 30, "n_items": 40}, "seed": 3})
    assert d.n_users == 30 and d.n_items == 40
    with pytest.raises(DataError, match=r"synthetic\.n_users"):
        load_dataset("synthetic", synthetic={"n_users": "many"})


# --- fetch -----------------------------------------------------------------------------

MEMBER = "pkg/dataset_example/tiny/tiny.inter"


def fake_remote(payload: bytes) -> Remote:
    return Remote(
        name="tiny",
        package="fakepkg",
        version="0.0.1",
        member=MEMBER,
        sha256=hashlib.sha256(payload).hexdigest(),
        filename="tiny.inter",
    )


def fake_downloader(payload: bytes, member: str = MEMBER, calls: list | None = None):
    def download(requirement: str, folder: Path) -> Path:
        if calls is not None:
            calls.append(requirement)
        wheel = folder / "fakepkg-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("pkg/__init__.py", "")
            zf.writestr(member, payload)
        return wheel

    return download


def test_fetch_extracts_verifies_and_caches(tmp_path: Path) -> None:
    payload = INTER.encode()
    calls: list[str] = []
    messages: list[str] = []
    remote = fake_remote(payload)
    download = fake_downloader(payload, calls=calls)
    got = fetch_remote(remote, data_dir=tmp_path, progress=messages.append, downloader=download)
    assert got == tmp_path / "tiny.inter" and got.read_bytes() == payload
    assert calls == ["fakepkg==0.0.1"]
    assert any("downloading fakepkg==0.0.1" in m for m in messages)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.inter"]  # no temporary left over
    # cache hit: the downloader is not called again
    assert (
        fetch_remote(remote, data_dir=tmp_path, downloader=fake_downloader(payload, calls=calls))
        == got
    )
    assert calls == ["fakepkg==0.0.1"]
    # a corrupted cache is downloaded again
    got.write_bytes(b"corrupt")
    fetch_remote(remote, data_dir=tmp_path, downloader=fake_downloader(payload, calls=calls))
    assert got.read_bytes() == payload and len(calls) == 2


def test_fetch_checksum_mismatch(tmp_path: Path) -> None:
    remote = fake_remote(b"expected content")
    with pytest.raises(DataError, match="checksum mismatch") as err:
        fetch_remote(remote, data_dir=tmp_path, downloader=fake_downloader(b"tampered"))
    assert "csv" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "tiny.inter").exists()


def test_fetch_missing_member(tmp_path: Path) -> None:
    remote = fake_remote(b"x")
    with pytest.raises(DataError, match="has no member " + re.escape(MEMBER)):
        fetch_remote(
            remote, data_dir=tmp_path, downloader=fake_downloader(b"x", member="other/file")
        )


def test_load_dataset_through_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = INTER.encode()
    monkeypatch.setitem(fetch_module.REMOTES, "ml-100k", fake_remote(payload))
    d = load_dataset("ml-100k", data_dir=tmp_path, downloader=fake_downloader(payload))
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 3, 3)


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDRULE_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("FEDRULE_DATA_DIR")
    assert resolve_data_dir() == Path.home() / ".cache" / "fedrule"


def test_pip_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        seen.append(cmd)
        err = "Looking in indexes: x\nERROR: No matching distribution found for recbole==1.2.1\n"
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=err)

    monkeypatch.setattr(fetch_module.subprocess, "run", failing_run)
    with pytest.raises(DataError, match=r"pip could not download recbole==1\.2\.1") as err:
        pip_download("recbole==1.2.1", tmp_path)
    message = str(err.value)
    assert "\n" not in message and "No matching distribution" in message and "synthetic" in message
    assert seen[0][1:4] == ["-m", "pip", "download"] and "--no-deps" in seen[0]


@pytest.mark.slow
def test_real_fetch_ml_100k(tmp_path: Path) -> None:
    try:
        d = load_dataset("ml-100k", data_dir=tmp_path)
    except DataError as exc:
        if "pip could not download" in exc.message or "cannot download" in exc.message:
            pytest.skip(f"package registry unreachable: {exc}")
        raise
    assert (d.n_interactions, d.n_users, d.n_items) == (100_000, 943, 1_682)
    assert d.timestamp.dtype == np.int64 and int(d.timestamp[0]) == 881250949
