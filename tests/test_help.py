"""`--help` everywhere: exit 0, and without loading the heavy modules (which keeps it instant)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers import REPO

SUBCOMMANDS = ["tag", "index", "similar", "search", "path", "cluster", "tags", "train", "evaluate"]
HEAVY_MODULES = {"onnxruntime", "librosa", "numpy", "annoy", "soundfile", "torch", "sklearn"}


def test_top_level_help_lists_every_command(qbsd_process):
    # how long it takes is measured by benchmarks/run.py (tests never assert absolute times)
    result = qbsd_process("--help")
    assert result.returncode == 0, result
    for command in SUBCOMMANDS:
        assert re.search(rf"\b{command}\b", result.stdout), command


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(qbsd, command):
    result = qbsd(command, "--help")
    assert result.returncode == 0, result
    assert "Usage:" in result.stdout
    assert re.search(rf"\b{command}\b", result.stdout)
    assert result.stderr == ""


def test_short_help_option(qbsd):
    long_help = qbsd("similar", "--help")
    short_help = qbsd("similar", "-h")
    assert short_help.returncode == 0, short_help
    assert short_help.stdout == long_help.stdout


def imported_modules(*args: str) -> set[str]:
    """Top-level packages imported by `python -X importtime -m qbsd_cli ARGS` (this checkout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QBSD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qbsd_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    modules = set()
    for line in completed.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            modules.add(name.split(".")[0])
    assert "qbsd_cli" in modules  # the report really covers our import
    return modules


@pytest.mark.parametrize("args", [["--help"], ["similar", "--help"], ["index", "--help"]])
def test_help_does_not_import_heavy_modules(args):
    heavy = imported_modules(*args) & HEAVY_MODULES
    assert not heavy, f"`qbsd {' '.join(args)}` imports {sorted(heavy)}"


def test_without_the_train_extra_train_says_how_to_install_it():
    # None in sys.modules makes torch and sklearn look uninstalled, as on a run-time-only install
    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['sklearn'] = None\n"
        "from qbsd_cli.cli import run\n"
        "sys.exit(run(sys.argv[1:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QBSD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def qbsd(*args):
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)

    trained = qbsd("train", "--data", "somewhere")
    assert trained.returncode == 1, trained
    assert "train extra" in trained.stderr and "pip install 'qbsd[train]'" in trained.stderr
    listed = qbsd("--help")
    assert listed.returncode == 0 and not re.search(r"\btrain\b", listed.stdout)
    assert re.search(r"\btag\b", listed.stdout)
