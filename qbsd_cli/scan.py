"""Find the audio files under folders, without opening any of them.

Only regular files are analysed; other entries with an audio name (a folder called
`x.mp3`, a FIFO, a broken link, a link loop, an unreadable folder) are problems,
reported with a reason. Symlinked folders are not followed, so loops cannot trap a scan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .audio import is_audio_path, not_regular_reason, stat_reason
from .errors import UsageError


@dataclass(frozen=True)
class Problem:
    """An audio-named entry that cannot be analysed: its identity and the reason."""

    size: int  # bytes (0 when even lstat fails)
    changed_ns: int  # see failure_identity
    reason: str


@dataclass
class Scan:
    """What a scan found: path -> stat of each regular audio file, path -> Problem, and the
    folders it could not read (what lies in them is unknown, not gone)."""

    files: dict[str, os.stat_result] = field(default_factory=dict)
    problems: dict[str, Problem] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def failure_identity(info: os.stat_result) -> tuple[int, int]:
    """(size in bytes, change time in ns) recorded with a failure: a failed file is retried
    when either changes. The time is the later of the modification and status-change
    times, so that fixing a file's permissions (which changes only the latter) also gets
    it retried."""
    return info.st_size, max(info.st_mtime_ns, info.st_ctime_ns)


def check_folders(folders: list[str]) -> None:
    """Raise UsageError naming the first of `folders` that is neither a folder nor a file."""
    for name in folders:
        if not os.path.isdir(name) and not os.path.isfile(name):
            raise UsageError(f"{os.path.abspath(name)}: no such folder")


def scan(folders: list[str]) -> Scan:
    """Audio files under `folders` (recursively; a file given directly is taken as it is),
    as absolute paths. Raises UsageError for a folder that does not exist."""
    found = Scan()

    def problem(path: str, reason: str) -> None:
        try:
            size, changed = failure_identity(os.lstat(path))
        except OSError:
            size, changed = 0, 0
        found.problems[path] = Problem(size, changed, reason)

    def visit(path: str) -> None:
        if not is_audio_path(path):
            return
        try:
            info = os.stat(path)
        except OSError as error:
            problem(path, stat_reason(path, error))
            return
        reason = not_regular_reason(info.st_mode)
        if reason:
            problem(path, reason)
        else:
            found.files[path] = info

    def unreadable(error: OSError) -> None:
        problem(error.filename, f"cannot read the folder: {error.strerror or error}")
        found.unreadable.append(os.fsdecode(error.filename))

    check_folders(folders)
    for folder in folders:
        folder = os.path.abspath(folder)
        if os.path.isfile(folder):
            visit(folder)
            continue
        for root, directories, names in os.walk(folder, onerror=unreadable):
            directories.sort()
            for name in directories:
                candidate = os.path.join(root, name)
                if is_audio_path(candidate) and not os.path.islink(candidate):
                    visit(candidate)
            for name in sorted(names):
                visit(os.path.join(root, name))
    return found


def under_any(path: str, roots: list[str]) -> bool:
    """True when `path` is one of the absolute `roots` or inside one of them."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)
