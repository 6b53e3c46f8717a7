"""``fedrule --version`` and ``fedrule.__version__``: the installed package's version."""

import subprocess
import sys
from importlib.metadata import version

import fedrule
from fedrule.cli import main


def test_the_package_version_comes_from_its_metadata():
    assert fedrule.__version__ == version("fedrule")
    assert fedrule.__version__[0].isdigit()


def test_version_option_prints_it_and_exits_0(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"fedrule {fedrule.__version__}\n"


def test_the_console_script_knows_its_version():
    done = subprocess.run(
        [sys.executable, "-c", "from fedrule.cli import entry; entry()", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"fedrule {fedrule.__version__}"
