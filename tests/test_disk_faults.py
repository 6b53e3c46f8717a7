"""Folders that cannot be written (issue 26): a read-only or permission-denied ``--out`` for
run, sweep and report, a full disk for ``--out``, ``engine.store_dir`` and ``$TMPDIR``. Each is
one line ``error: <folder or key>: ...``, exit code 2, no traceback, no half-written folder, no
stray temporary file, and a partial run that holds a checkpoint stays resumable to the same
results.

Real small file systems (a tmpfs of a few KiB, a read-only tmpfs) where the tests run as root
(``tests/mounts.py``; skipped with the reason otherwise); as root, permission-denied runs the
command without CAP_DAC_OVERRIDE (``setpriv``), since root ignores file permissions. The
injected variants (``OSError(ENOSPC)`` from the write itself) always run."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from fedrule.cli import main
from fedrule.report.run import run_scenario
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario
from tests.mounts import resize, tmpfs, without_root_override


def _raw(**patch) -> dict:
    return fleet_scenario(engine__transport="inprocess", federated__rounds=4, **patch)


def _scenario(tmp_path: Path, raw: dict | None = None) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw or _raw()))
    return path


def _error_line(err: str) -> str:
    """The one ``error:`` line of stderr (other lines: the kept partial's resume hint)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def _only_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return _error_line(err)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return run_scenario(scenario_from_dict(_raw()), tmp_path_factory.mktemp("runs"))


def _same_results(a: Path, b: Path) -> None:
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert ma["test"] == mb["test"] and ma["tiers"] == mb["tiers"]
    ta = torch.load(a / "model-seed0.pt", weights_only=True)["item"]
    assert torch.equal(ta, torch.load(b / "model-seed0.pt", weights_only=True)["item"])
    assert (a / "devices-seed0.csv").read_text() == (b / "devices-seed0.csv").read_text()


# ------------------------------------------------------------------ read-only and denied --out
def test_a_read_only_out_is_one_line_for_run_sweep_and_report(tmp_path, capsys, finished_run):
    scenario = _scenario(tmp_path)
    with tmpfs(tmp_path / "ro", 64 * 1024, read_only=True) as ro:
        code = main(["run", str(scenario), "--out", str(ro), "--quiet"])
        line = _only_line(code, capsys.readouterr().err)
        assert line == (
            f"error: {ro}: is on a read-only file system: cannot write the run folder "
            "(choose another --out)"
        )
        code = main(["sweep", str(scenario), "--grid", "model.dim=8,4", "--out", str(ro / "s")])
        line = _only_line(code, capsys.readouterr().err)
        assert line.startswith(f"error: {ro / 's'}: is on a read-only file system")
        code = main(["report", str(finished_run), "--out", str(ro)])
        line = _only_line(code, capsys.readouterr().err)
        assert line.startswith(f"error: {ro}: is on a read-only file system: cannot write ")
        assert not any(ro.iterdir())


def test_a_permission_denied_out_is_one_line_for_run_sweep_and_report(tmp_path, finished_run):
    prefix = without_root_override()
    scenario = _scenario(tmp_path)
    denied = tmp_path / "denied"
    denied.mkdir()
    denied.chmod(0o555)
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
    commands = {
        "run": ["run", str(scenario), "--out", str(denied), "--quiet"],
        "sweep": ["sweep", str(scenario), "--grid", "model.dim=8,4", "--out", str(denied)],
        "report": ["report", str(finished_run), "--out", str(denied)],
    }
    try:
        for name, args in commands.items():
            done = subprocess.run(
                [*prefix, sys.executable, "-m", "fedrule", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            line = _only_line(done.returncode, done.stderr)
            assert line.startswith(f"error: {denied}: permission denied: cannot write "), name
        assert not any(denied.iterdir())
    finally:
        denied.chmod(0o755)


# ----------------------------------------------------------------------- a full disk for --out
def test_a_full_out_disk_keeps_a_resumable_partial(tmp_path, capsys):
    """64 KiB hold the checkpoints (6 KiB each) but not the model file (88 KiB): the run stops
    with one line naming --out, and once there is room it resumes to the same results."""
    reference = run_scenario(scenario_from_dict(_raw()), tmp_path / "reference")
    scenario = _scenario(tmp_path)
    with tmpfs(tmp_path / "small", 64 * 1024) as small:
        code = main(["run", str(scenario), "--out", str(small), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2
        assert _error_line(err) == (
            f"error: {small}: the disk is full: no space left for the run folder (free space "
            "there, or choose another --out)"
        )
        (partial,) = small.glob(".*.partial")
        assert f"fedrule run --resume {partial}" in err
        assert not list(partial.rglob("*.tmp")) and not (partial / "model-seed0.pt").exists()
        state = torch.load(partial / "checkpoint" / "current.pt", weights_only=True)["state"]
        assert state["round"] == 4
        resize(small, 4 << 20)
        assert main(["run", "--resume", str(partial), "--quiet"]) == 0
        (resumed,) = small.glob("fleet-*")
        _same_results(reference, resumed)


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    """ENOSPC injected into the third checkpoint's write (after 100 bytes): no temporary file is
    left, the checkpoint of round 2 stays readable, and the resumed run ends as an
    uninterrupted one."""
    reference = run_scenario(scenario_from_dict(_raw()), tmp_path / "reference")
    save, calls = torch.save, []

    def full_disk(obj, handle, *args, **kwargs):
        if ".current.pt." in str(getattr(handle, "name", "")):
            calls.append(1)
            if len(calls) == 3:
                handle.write(b"x" * 100)
                raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "runs"
    code = main(["run", str(_scenario(tmp_path)), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    (partial,) = out.glob(".*.partial")
    assert code == 2
    assert _error_line(err) == (
        f"error: {partial}: the disk is full: no space left for the checkpoint (free space "
        f"there, then continue with: fedrule run --resume {partial})"
    )
    assert sorted(p.name for p in (partial / "checkpoint").iterdir()) == ["current.pt"]
    assert (
        torch.load(partial / "checkpoint" / "current.pt", weights_only=True)["state"]["round"] == 2
    )
    monkeypatch.setattr(torch, "save", save)
    assert main(["run", "--resume", str(partial), "--quiet"]) == 0
    (resumed,) = out.glob("fleet-*")
    _same_results(reference, resumed)


# --------------------------------------------------- a full disk for the device store ($TMPDIR)
def _big_data(raw: dict) -> dict:
    raw["data"]["synthetic"] = {"users": 200, "items": 150, "interactions_per_user": 30}
    return raw


def test_a_full_store_dir_is_one_line_and_leaves_nothing(tmp_path, capsys):
    with tmpfs(tmp_path / "store", 16 * 1024) as store:
        raw = _big_data(_raw(engine__store_dir=str(store)))
        out = tmp_path / "runs"
        code = main(["run", str(_scenario(tmp_path, raw)), "--out", str(out), "--quiet"])
        line = _only_line(code, capsys.readouterr().err)
        assert line == (
            f"error: engine.store_dir: the disk is full: no space left for the device store "
            f"(every device's data) in {store} (free space there, or choose another "
            "engine.store_dir (or TMPDIR))"
        )
        assert not any(store.iterdir())
        assert not any(out.iterdir())


def test_a_full_tmpdir_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    with tmpfs(tmp_path / "tmp", 16 * 1024) as tmp:
        monkeypatch.setenv("TMPDIR", str(tmp))
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        out = tmp_path / "runs"
        scenario = _scenario(tmp_path, _big_data(_raw()))
        code = main(["run", str(scenario), "--out", str(out), "--quiet"])
        line = _only_line(code, capsys.readouterr().err)
        assert line.startswith("error: $TMPDIR: the disk is full: no space left for the device ")
        assert f"in {tmp} " in line
        assert not any(tmp.iterdir())
        assert not any(out.iterdir())


def test_an_injected_full_disk_while_writing_the_store(tmp_path, capsys, monkeypatch):
    import fedrule.device.store

    def full_disk(file, **arrays):
        Path(file).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fedrule.device.store.np, "savez", full_disk)
    store = tmp_path / "store"
    store.mkdir()
    out = tmp_path / "runs"
    scenario = _scenario(tmp_path, _raw(engine__store_dir=str(store)))
    code = main(["run", str(scenario), "--out", str(out), "--quiet"])
    line = _only_line(code, capsys.readouterr().err)
    assert line.startswith("error: engine.store_dir: the disk is full: no space left for the ")
    assert not any(store.iterdir()) and not any(out.iterdir())
