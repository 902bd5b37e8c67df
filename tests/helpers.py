"""Test helpers: `qbsd` run in this process or as a real subprocess, real clips, generated audio.

`Qbsd` runs the installed command line (the `qbsd` executable on PATH, or `python -m
qbsd_cli` from this checkout) as a subprocess, for what needs a real process: signals,
pipes, installs, concurrent runs. `InProcessQbsd` runs the same command line in the
test's own process (`qbsd_cli.cli.run`, with stdin, stdout, stderr, the environment and
the working directory swapped as typer's CliRunner does): the same exit statuses and
output, without a Python start per call. Both give XDG_DATA_HOME and XDG_CACHE_HOME
inside a temporary folder, so that nothing touches the user's own index. The tag model
is the one `qbsd` finds by default: the shipped model, or the file named by $QBSD_MODEL
when that is set in the environment.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "moods4q"
CLIPS_DIR = SHARED_DATA / "audio"
CAL500 = REPO.parent / "shared" / "data" / "cal500"
NO_CLIPS = "../shared/data/moods4q not found: real-audio tests need the shared data beside the repository"
SAMPLE_RATE = 22050


# --------------------------------------------------------------------------- running qbsd


def qbsd_command() -> list[str]:
    """The `qbsd` executable if installed, else this checkout's `python -m qbsd_cli`."""
    executable = shutil.which("qbsd")
    return [executable] if executable else [sys.executable, "-m", "qbsd_cli"]


class Result:
    """A finished `qbsd` run: returncode, stdout, stderr (text)."""

    def __init__(self, args: list[str], completed: subprocess.CompletedProcess):
        self.args = args
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def __repr__(self) -> str:
        return (
            f"<qbsd {' '.join(self.args)} -> {self.returncode}\n"
            f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"
        )


class Qbsd:
    """Runs `qbsd ARGS...` in a private environment rooted at `home`.

    `index=FOLDER` appends `--index FOLDER`; `input` is fed to stdin (stdin is
    otherwise empty, never the terminal)."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.data_home = self.home / "xdg-data"
        self.cache_home = self.home / "xdg-cache"
        self.data_home.mkdir(parents=True, exist_ok=True)
        self.cache_home.mkdir(parents=True, exist_ok=True)
        self.command = qbsd_command()
        env = {k: v for k, v in os.environ.items() if not k.startswith("QBSD_")}
        chosen = os.environ.get("QBSD_MODEL")
        if chosen:  # the model to test, if the caller chose one: a shipped model's name, or a file
            from qbsd_cli.model import SHIPPED_MODELS

            env["QBSD_MODEL"] = chosen if chosen in SHIPPED_MODELS else os.path.abspath(chosen)
        env["XDG_DATA_HOME"] = str(self.data_home)
        env["XDG_CACHE_HOME"] = str(self.cache_home)
        env["PYTHONIOENCODING"] = "utf-8"
        env.pop("PYTHONWARNINGS", None)
        if self.command[0] == sys.executable:  # not installed: import this checkout
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.env = env

    def shell_command(self) -> str:
        """The command as a shell word list, for `bash -c` pipelines."""
        import shlex

        return " ".join(shlex.quote(part) for part in self.command)

    def __call__(
        self,
        *args,
        index: Path | None = None,
        input: str | bytes | None = None,
        env: dict | None = None,
        timeout: float = 120,
    ) -> Result:
        argv = [str(a) for a in args] + (["--index", str(index)] if index is not None else [])
        data = input.encode() if isinstance(input, str) else (input if input is not None else b"")
        status, out, err = self.execute(argv, data, {**self.env, **(env or {})}, timeout)
        completed = subprocess.CompletedProcess(
            argv, status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )
        return Result(argv, completed)

    def execute(self, argv: list[str], data: bytes, environment: dict, timeout: float) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of `qbsd ARGV` with `data` on stdin."""
        completed = subprocess.run(
            self.command + argv, input=data, capture_output=True, env=environment, cwd=self.home, timeout=timeout
        )
        return completed.returncode, completed.stdout, completed.stderr

    def shell(self, script: str, timeout: float = 120) -> Result:
        """Run a bash script (with pipefail) in which `qbsd` is this qbsd command, for real pipes."""
        prelude = f'qbsd() {{ {self.shell_command()} "$@"; }}\n'
        completed = subprocess.run(
            ["bash", "-o", "pipefail", "-c", prelude + script],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
        )
        return Result(["bash", "-c", script], completed)


class InProcessQbsd(Qbsd):
    """`qbsd ARGS...` run by `qbsd_cli.cli.run` in this process, with the environment,
    stdin/stdout/stderr and working directory of a subprocess run; `shell` still starts
    real processes (pipes need them)."""

    def execute(self, argv: list[str], data: bytes, environment: dict, timeout: float) -> tuple[int, bytes, bytes]:
        # `timeout` cannot stop a call in this process; the per-file --timeout of the
        # command's own workers still holds
        from typer.testing import CliRunner

        from qbsd_cli.cli import run

        # the variables a subprocess would not see: removed for the call, restored after
        overrides = {**{key: None for key in os.environ if key not in environment}, **environment}
        previous = os.getcwd()
        os.chdir(self.home)
        try:
            with CliRunner().isolation(input=data, env=overrides) as (stdout, stderr, _mixed):
                status = run(argv)
                sys.stdout.flush()
                sys.stderr.flush()
                return int(status), stdout.getvalue(), stderr.getvalue()
        finally:
            os.chdir(previous)


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stderr, result
    assert "Traceback" not in result.stdout, result


# --------------------------------------------------------------------------- real clips


def pick_clips() -> list[Path]:
    """All clips, ordered so that the first few cover the four quadrants in turn."""
    clips = sorted(CLIPS_DIR.glob("*.mp3"))
    annotations = SHARED_DATA / "annotations.csv"
    if not annotations.exists():
        return clips
    with open(annotations, newline="", encoding="latin-1") as handle:
        quadrant = {row["Song"]: row["Quadrant"] for row in csv.DictReader(handle)}
    by_quadrant: dict[str, list[Path]] = {}
    for clip in clips:
        by_quadrant.setdefault(quadrant.get(clip.stem, "?"), []).append(clip)
    ordered: list[Path] = []
    queues = [by_quadrant[q] for q in sorted(by_quadrant)]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def copy_clips(clips: list[Path], folder: Path) -> list[Path]:
    """Copy clips (contents only, so the copies are writable) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for clip in clips:
        target = folder / clip.name
        shutil.copyfile(clip, target)
        copies.append(target)
    return copies


# --------------------------------------------------------------------------- generated audio


def write_chord(
    path: Path,
    frequencies=(220.0, 277.18, 329.63),
    seconds: float = 4.0,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
) -> Path:
    """A sine chord with a gentle fade in and out, as wav or flac (by extension)."""
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = sum(np.sin(2 * np.pi * f * t) for f in frequencies) / (len(frequencies) + 1)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    signal = (signal * fade).astype(np.float32)
    if channels > 1:
        signal = np.stack([signal] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), signal, sample_rate)
    return path


def write_noise_bursts(
    path: Path, seconds: float = 4.0, bursts_per_second: float = 4.0, sample_rate: int = SAMPLE_RATE, seed: int = 0
) -> Path:
    """White-noise bursts with silence between them (a crude drum track)."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    signal = np.zeros(n, dtype=np.float32)
    period = int(sample_rate / bursts_per_second)
    length = period // 4
    envelope = np.exp(-np.arange(length) / (length / 5)).astype(np.float32)
    for start in range(0, n - length, period):
        signal[start : start + length] = 0.5 * rng.standard_normal(length).astype(np.float32) * envelope
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), signal, sample_rate)
    return path


class AudioFactory:
    """Generated test audio inside one folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def chord(self, name: str = "chord.wav", **kwargs) -> Path:
        return write_chord(self.folder / name, **kwargs)

    def noise(self, name: str = "noise.flac", **kwargs) -> Path:
        return write_noise_bursts(self.folder / name, **kwargs)

    def broken(self, name: str = "broken.mp3", content: bytes = b"this is not audio\n" * 20) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path


# --------------------------------------------------------------------------- a shared index


class Library:
    """A folder of real and generated audio, indexed once: read-only for the tests."""

    def __init__(self, qbsd: Qbsd, music: Path, index: Path, real: list[Path], generated: list[Path], result: Result):
        self.qbsd = qbsd
        self.music = music
        self.index = index
        self.real = real
        self.generated = generated
        self.files = real + generated
        self.result = result


def model_with_another_id(qbsd, folder: Path) -> tuple[str, str, Path]:
    """A copy of the model in use whose id differs (same length, so the ONNX stays valid)."""
    verbose = qbsd("tags", "--verbose")
    assert verbose.returncode == 0, verbose
    match = re.match(r"model (\S+), \d+ tags, (.+)$", verbose.err_lines[0])
    model_id, model_path = match.group(1), Path(match.group(2))
    if not model_path.is_absolute():
        model_path = qbsd.home / model_path
    other_id = model_id[:-4] + ("zzzz" if not model_id.endswith("zzzz") else "yyyy")
    data = model_path.read_bytes()
    assert data.count(model_id.encode()) >= 1
    copy = folder / "other.onnx"
    copy.write_bytes(data.replace(model_id.encode(), other_id.encode()))
    check = qbsd("tags", "--verbose", "--model", copy)
    assert check.returncode == 0, check
    assert check.err_lines[0].startswith(f"model {other_id},")
    return model_id, other_id, copy
