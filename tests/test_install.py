"""Installing qbsd the ways a user would: the wheel ships the model, and the installed
`qbsd` works from anywhere, with no source tree to fall back on.

(a) a wheel built from the working tree holds qbsd_cli/models/qbsd.onnx and its README;
(b) that wheel, installed with `pip install --no-deps` into a fresh venv, runs `qbsd tags`
    and `qbsd tag CLIP` from a folder outside the repository;
(c) the same after `pip install --no-deps FOLDER` of a copy of the working tree (a copy,
    not a clone, so that uncommitted files such as the model are included).

The fresh venvs get their dependencies from the environment running the tests, not from
the network: they are made with --system-site-packages, and a .pth file adds this
environment's site-packages after the venv's own (--system-site-packages alone would only
reach the base interpreter's packages when the tests run inside a venv). Only plain paths
go into that .pth, so an editable install of qbsd here cannot leak into the fresh venv.
The tests skip while models/qbsd.onnx does not exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import REPO

MODEL = REPO / "models" / "qbsd.onnx"
MODEL_CARD = REPO / "models" / "README.md"
NOT_COPIED = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".venv", "results"
)

pytestmark = pytest.mark.skipif(
    not MODEL.is_file(),
    reason="models/qbsd.onnx does not exist yet (train and export the model "
    "first): the install tests check that it ships in the package",
)


def copy_tree(target: Path) -> Path:
    """The working tree (committed or not) without VCS data, build output or caches."""
    shutil.copytree(REPO, target, ignore=NOT_COPIED, symlinks=True)
    return target


def pip(python: Path | str, *args: str, cwd: Path) -> None:
    """`python -m pip ARGS` offline (only local files), failing the test with pip's output."""
    completed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            *args,
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        timeout=300,
    )
    assert completed.returncode == 0, f"pip {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}"


def clean_env(**extra: str) -> dict:
    """This environment without anything that could point Python at the source tree."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QBSD_", "PYTHON", "PIP_")) and k not in ("VIRTUAL_ENV", "CONDA_PREFIX")
    }
    env.update(PYTHONNOUSERSITE="1", PYTHONIOENCODING="utf-8", **extra)
    return env


def model_metadata() -> dict[str, str]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


# --------------------------------------------------------------------------- (a) the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built, without build isolation (no network), from a copy of the working tree
    (building in the checkout itself would leave build/ and *.egg-info there)."""
    work = tmp_path_factory.mktemp("wheel")
    source = copy_tree(work / "source")
    pip(
        sys.executable,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(work / "dist"),
        str(source),
        cwd=work,
    )
    wheels = list((work / "dist").glob("qbsd-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_the_model_and_its_card(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "qbsd_cli/models/qbsd.onnx" in names, sorted(names)
        assert archive.getinfo("qbsd_cli/models/qbsd.onnx").file_size == MODEL.stat().st_size
        assert "qbsd_cli/models/README.md" in names, (
            f"the model card models/README.md is not in the wheel (exists in the repo: {MODEL_CARD.is_file()})"
        )
        # the page of `qbsd map` reads its script and style as package data
        assert {"qbsd_cli/map_page.js", "qbsd_cli/map_page.css"} <= names, sorted(names)
        entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
        assert "qbsd = qbsd_cli.cli:main" in archive.read(entry_points).decode()
        assert not any(name.startswith(("tests/", "models/")) for name in names), sorted(names)


# --------------------------------------------------------------------------- (b), (c) installed


def fresh_venv(folder: Path) -> Path:
    """A venv whose packages are its own first, then this environment's; returns its bin folder."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=os.name != "nt", clear=True).create(folder)
    bin_dir = folder / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    ).stdout.strip()
    ours = [
        path
        for path in sys.path
        if path.endswith(("site-packages", "dist-packages")) and os.path.isdir(path) and Path(path).resolve() != REPO
    ]
    for path in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]):
        if path not in ours and os.path.isdir(path):
            ours.append(path)
    Path(purelib, "_qbsd_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    return bin_dir


def check_installed(bin_dir: Path, venv_root: Path, clip: Path, home: Path) -> None:
    """From a folder outside the repository: qbsd_cli and its model come from the venv,
    `qbsd tags` prints the model's vocabulary and `qbsd tag CLIP` tags the clip."""
    outside = home / "elsewhere"
    outside.mkdir(parents=True)
    env = clean_env(XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"))

    def run(*argv) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=outside, env=env, timeout=120)

    where = run(
        bin_dir / "python",
        "-c",
        "import qbsd_cli, qbsd_cli.model as m; print(qbsd_cli.__file__); print(m.default_model_path())",
    )
    assert where.returncode == 0, where.stderr
    module_file, model_path = (Path(line).resolve() for line in where.stdout.splitlines())
    root = venv_root.resolve()
    assert root in module_file.parents, f"qbsd_cli imported from {module_file}, not from the venv {root}"
    assert root in model_path.parents and model_path.is_file(), (
        f"the installed package has no model: {model_path} does not exist (is it in the package data?)"
    )

    metadata = model_metadata()
    tags = run(bin_dir / "qbsd", "tags")
    assert tags.returncode == 0, tags.stderr
    assert tags.stdout.splitlines() == json.loads(metadata["qbsd.tags"])

    tagged = run(bin_dir / "qbsd", "tag", clip, "--format", "json", "--jobs", "1", "--top", "3")
    assert tagged.returncode == 0, tagged.stderr
    records = [json.loads(line) for line in tagged.stdout.splitlines() if line.strip()]
    assert len(records) == 1, tagged.stdout
    assert records[0]["model"] == metadata["qbsd.model_id"]
    assert Path(records[0]["path"]).name == clip.name
    assert len(records[0]["tags"]) == 3
    assert all(0.0 <= entry["score"] <= 1.0 for entry in records[0]["tags"])


def test_installed_wheel_runs_outside_the_repository(wheel, clips, tmp_path):
    root = tmp_path / "venv"
    bin_dir = fresh_venv(root)
    pip(bin_dir / "python", "install", "--no-deps", "--ignore-installed", str(wheel), cwd=tmp_path)
    check_installed(bin_dir, root, clips[0], tmp_path / "home")


def test_pip_install_of_the_source_tree_runs_outside_the_repository(clips, tmp_path):
    source = copy_tree(tmp_path / "source")
    root = tmp_path / "venv"
    bin_dir = fresh_venv(root)
    pip(
        bin_dir / "python",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--ignore-installed",
        str(source),
        cwd=tmp_path,
    )
    check_installed(bin_dir, root, clips[0], tmp_path / "home")
