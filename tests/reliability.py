"""Helpers shared by the reliability tests (bad input, time limits, interrupted and
concurrent runs, damaged indexes): the index summary line, songs in an index, a
genuinely slow input, and `qbsd` started in the background."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import struct
import subprocess
import time
from pathlib import Path

SUMMARY = re.compile(
    r"added (\d+), updated (\d+), removed (\d+), failed (\d+), unchanged (\d+); "
    r"(\d+) songs in (.+); [\d.]+ s$"
)


def summary(result) -> dict:
    """The counts of the one `qbsd index` summary line on stderr."""
    lines = [line for line in result.err_lines if SUMMARY.search(line)]
    assert len(lines) == 1, result
    values = SUMMARY.search(lines[0]).groups()
    names = ["added", "updated", "removed", "failed", "unchanged", "songs"]
    return {name: int(value) for name, value in zip(names, values)}


def error_lines(result) -> list[str]:
    """stderr lines other than the index summary."""
    return [line for line in result.err_lines if not SUMMARY.search(line)]


def stored_songs(index: Path) -> int:
    """Songs committed to the index database (0 if there is none yet), read like any
    other reader would while `qbsd index` may be writing."""
    database = Path(index) / "songs.sqlite"
    if not database.exists():
        return 0
    try:
        connection = sqlite3.connect(database, timeout=10)
        try:
            return connection.execute("SELECT count(*) FROM songs").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error:  # not created yet (no tables)
        return 0


def integrity(index: Path) -> str:
    connection = sqlite3.connect(Path(index) / "songs.sqlite", timeout=10)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def write_endless_wav(path: Path) -> Path:
    """A real, valid 16-bit mono 22.05 kHz WAV of digital silence that is 27 hours long
    (4 GB), stored sparse so that it takes no disk space. Its default analysis (four
    30 s segments, reached by seeking) is quick; `--full` analyses every segment and
    takes many minutes: a genuinely slow input for the per-file time limit."""
    data_size = 0xFFFFFF00
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    header = (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + data_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_size)
    return path


def is_sparse(path: Path) -> bool:
    info = os.stat(path)
    return info.st_blocks * 512 < info.st_size // 100


class Background:
    """`qbsd ARGS` running in its own process group, output collected in files."""

    def __init__(self, qbsd, *args, index: Path | None = None, cwd: Path | None = None):
        argv = [str(a) for a in args] + (["--index", str(index)] if index else [])
        folder = Path(qbsd.home) / f"bg-{time.monotonic_ns()}"
        folder.mkdir(parents=True)
        self.stdout_path, self.stderr_path = folder / "stdout", folder / "stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                qbsd.command + argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=qbsd.env,
                cwd=cwd or qbsd.home,
                start_new_session=True,
            )
        self.pid = self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout)

    def signal_group(self, number: int) -> None:
        try:
            os.killpg(self.pid, number)
        except ProcessLookupError:
            pass

    def kill_main(self) -> None:
        """SIGKILL the `qbsd` process only (as `kill -9 PID` or the OOM killer would)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def group_gone(self, within: float = 10.0) -> bool:
        """True once no process of the group is left (workers included)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.02)
        return False

    def children(self) -> list[int]:
        """Process ids of the worker processes (Linux /proc)."""
        found = []
        task_folder = Path(f"/proc/{self.pid}/task")
        try:
            for task in task_folder.iterdir():
                found += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            pass
        return found

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def returncode(self):
        return self.process.returncode

    def __repr__(self) -> str:
        return (
            f"<background qbsd -> {self.process.returncode}\nstdout: {self.stdout[-2000:]}\n"
            f"stderr: {self.stderr[-2000:]}>"
        )


def wait_until(condition, timeout: float = 60.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
