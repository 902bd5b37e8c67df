"""A healthy index on a read-only folder (a shared NAS, a mounted snapshot) answers queries;
only writing needs write access, and says so in one line."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
from helpers import assert_no_traceback, write_chord, write_noise_bursts


def _without_privileges() -> list[str]:
    """A prefix that runs a command without root's power to ignore permission bits."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--"] if setpriv else None
    if prefix is None or subprocess.run(prefix + ["true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without setpriv: permission bits cannot apply")
    return prefix


def _read_only(folder) -> None:
    for entry in [folder, *folder.iterdir()]:
        mode = os.stat(entry).st_mode
        os.chmod(entry, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def read_only_index(qbsd_process, tmp_path):
    music = tmp_path / "music"
    files = [
        write_chord(music / "a.wav"),
        write_chord(music / "b.wav", frequencies=(880.0, 990.0)),
        write_noise_bursts(music / "c.wav"),
        write_noise_bursts(music / "d.wav", bursts_per_second=9.0, seed=3),
    ]
    index = tmp_path / "index"
    built = qbsd_process("index", music, index=index)
    assert built.returncode == 0, built
    _read_only(index)
    prefix = _without_privileges()

    def run(*args):
        command = prefix + qbsd_process.command + [str(a) for a in args] + ["--index", str(index)]
        return subprocess.run(command, env=qbsd_process.env, cwd=qbsd_process.home, capture_output=True, text=True)

    yield run, files, index
    os.chmod(index, 0o755)


def test_queries_answer_from_a_read_only_index(read_only_index):
    run, files, index = read_only_index
    listing = sorted(os.listdir(index))
    for args in (
        ["similar", files[0], "--format", "json"],
        ["search", "calm", "--format", "json"],
        ["path", files[0], files[1], "--steps", "3", "--format", "json"],
        ["index", "--errors"],
        ["index", "--duplicates"],
    ):
        result = run(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "damaged" not in result.stderr
        assert "Traceback" not in result.stderr
    assert len(run("similar", files[0], "--format", "json").stdout.splitlines()) == 3
    assert sorted(os.listdir(index)) == listing  # no file made, none deleted


def test_writing_a_read_only_index_says_so_in_one_line(read_only_index, tmp_path):
    run, files, _index = read_only_index
    result = run("index", tmp_path / "music")
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert "read-only" in line and "similar, search and path still answer" in line


def test_a_read_only_index_without_its_wal_files(qbsd_process, tmp_path):
    """A cleanly closed index has no -wal or -shm file, and a read-only folder cannot hold
    new ones: it is read as it is on disk."""
    music = tmp_path / "music"
    song = write_chord(music / "a.wav")
    write_noise_bursts(music / "b.wav")
    index = tmp_path / "index"
    assert qbsd_process("index", music, index=index).returncode == 0
    assert not any(name.endswith(("-wal", "-shm")) for name in os.listdir(index))
    _read_only(index)
    prefix = _without_privileges()
    try:
        command = prefix + qbsd_process.command + ["similar", str(song), "--format", "json", "--index", str(index)]
        result = subprocess.run(command, env=qbsd_process.env, cwd=qbsd_process.home, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 1
    finally:
        os.chmod(index, 0o755)


def test_a_read_only_index_in_process(qbsd, tmp_path):
    """The library too: Index.open on a read-only folder queries without writing."""
    from qbsd_cli import Index

    music = tmp_path / "music"
    song = write_chord(music / "a.wav")
    write_noise_bursts(music / "b.wav")
    index = tmp_path / "index"
    assert qbsd("index", music, index=index).returncode == 0
    before = {name: os.stat(index / name).st_mtime_ns for name in os.listdir(index)}
    with Index.open(index) as opened:
        assert len(opened.similar(str(song), top=5)) == 1
    after = {name: os.stat(index / name).st_mtime_ns for name in os.listdir(index)}
    assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == {
        k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))
    }
    assert_no_traceback(qbsd("index", "--errors", index=index))
