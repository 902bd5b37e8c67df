"""qbsd under load: index a messy library of thousands of files, change it, index again.

    python benchmarks/load.py                                  # 2,000 audio files + 40 bad ones
    python benchmarks/load.py --files 100 --bad 8 --out /tmp/LOAD-small.md   # a quick try

What it does, in a temporary folder that is deleted at the end (never inside the repo):

1. builds a library from the 800 clips of ../shared/data/moods4q/audio: plain copies,
   re-encodings (FLAC, WAV, OGG/Vorbis, 44.1 kHz stereo MP3, all written with soundfile),
   concatenations of several clips (1-3 minutes), MP3s cut off half-way (still decodable),
   symbolic links to songs, in nested folders whose names have spaces, quotes, unicode
   (NFC and NFD), a newline, bytes that are not UTF-8; plus bad files mixed in (empty,
   MP3s truncated to a few hundred bytes, random bytes with audio extensions, text
   renamed .mp3, a WAV header without samples, a folder named x.flac, a broken symbolic
   link, a link loop) and non-audio files that must be ignored;
2. runs `qbsd index LIBRARY --index INDEX` as a child process (default --jobs), timing it and
   parsing its summary line, and checks that `qbsd index --errors` lists exactly the bad files;
3. adds, changes (rewrites with other audio) and deletes about 50 files each, turns a few
   songs bad and mends a few bad files, and indexes again;
4. checks after each run that the store matches the folder exactly (songs == good files,
   with their sizes and mtimes; failures == bad files), and that further runs on the
   unchanged library analyse nothing (the store's song revision does not move);
5. writes a markdown report to --out (default benchmarks/LOAD.md) and prints it.

`qbsd` is the executable on PATH, else `python -m qbsd_cli` from this checkout; the model is
the shipped one (QBSD_* variables are removed from the environment). Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

CLIPS_DIR = REPO.parent / "shared" / "data" / "moods4q" / "audio"
CLIP_SECONDS = 30.0
SEGMENT_SECONDS = 30.0
MAX_SEGMENTS = 4  # qbsd's default: at most four 30 s segments per file
LOADED_BY = "scratch/cv.py"

SUMMARY = re.compile(
    r"^added (\d+), updated (\d+), removed (\d+), failed (\d+), unchanged (\d+); "
    r"(\d+) songs in .*; ([\d.]+) s$",
    re.MULTILINE,
)

# Names for folders and files: spaces, quotes, shell metacharacters, scripts, emoji.
ARTISTS = [
    "Les Étoiles",
    "Sigur Rós",
    "坂本 龍一",
    "Motörhead",
    "Guns N' Roses",
    'The "Quoted" Band',
    "Кино",
    "عمرو دياب",
    "Björk & Friends",
    "$(echo hi) `tick`",
    "back\\slash",
    "a%20b #1",
    "emoji 🎵🎸",
    "Ωmega Ψ",
    "ＦＵＬＬＷＩＤＴＨ",
    "  leading spaces",
    "trailing space ",
    "-dash first",
    "semi;colon",
    "dots.in.name",
    "Ünïcödé Çafé",
    "मधुर",
    "!!! (Chk Chk Chk)",
    "'single'",
]
ALBUMS = [
    "Greatest Hits",
    'Live at the "Apollo"',
    "Demos (1999)",
    "B-Sides & Rarities",
    "Disc 1",
    "第一张专辑",
    "Été",
    "[Remastered]",
    "{braces}",
    "O'Brien Sessions",
    "Vol. 2",
    "untitled",
]
TITLES = [
    "Song",
    "Intro",
    "Don't Stop",
    "“Curly” quotes",
    "Señorita",
    "naïve café",
    "日本の歌",
    "Ça va?",
    "50% off",
    "A+B=C",
    "tab\there",
    "Smile :)",
    "Prélude",
    "Ünder Prëssure",
    'What\'s "this"?',
    "Ёлка",
    "Zoë",
    "fin.",
]

# Good files: (kind, weight). "copy" keeps the clip's MP3 bytes; the others re-encode.
GOOD_KINDS = [
    ("copy", 0.30),
    ("flac", 0.15),
    ("wav", 0.10),
    ("wav-44k-stereo-float", 0.03),
    ("ogg", 0.13),
    ("mp3-44k-stereo", 0.17),
    ("concat", 0.07),
    ("mp3-cut-half", 0.01),
    ("flac-upper-ext", 0.02),
    ("hidden-copy", 0.02),
]
# Bad files, in the order they are handed out (then repeated).
BAD_KINDS = [
    "empty",
    "truncated-mp3",
    "random-bytes",
    "text-as-mp3",
    "wav-header-only",
    "random-bytes",
    "truncated-mp3",
    "empty",
]
RANDOM_EXTS = [".mp3", ".flac", ".ogg", ".wav", ".opus", ".aiff", ".m4a"]
EXT_OF = {
    "copy": ".mp3",
    "flac": ".flac",
    "wav": ".wav",
    "wav-44k-stereo-float": ".wav",
    "ogg": ".ogg",
    "mp3-44k-stereo": ".mp3",
    "mp3-cut-half": ".mp3",
    "flac-upper-ext": ".FLAC",
    "hidden-copy": ".mp3",
}
AUDIO_EXTS = {
    ".mp3",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".wav",
    ".wave",
    ".aif",
    ".aiff",
    ".aifc",
    ".m4a",
    ".aac",
    ".wma",
    ".mp4",
}


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def display(path: str) -> str:
    """As qbsd prints a path (display.shown_path): undecodable bytes as escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- writing audio


@functools.lru_cache(maxsize=64)
def _clip(path: str) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def _audio(sources: list[str], seconds: float | None) -> tuple[np.ndarray, int]:
    parts = [_clip(source) for source in sources]
    rate = parts[0][1]
    mono = np.concatenate([samples for samples, _ in parts])
    if seconds is not None:
        mono = mono[: int(seconds * rate)]
    return mono, rate


def _stereo_44k(mono: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    up = soxr.resample(mono, rate, 44100).astype(np.float32)
    delay = 132  # 3 ms: a stereo image that is not two identical channels
    right = np.concatenate([np.zeros(delay, np.float32), up[:-delay]]) * 0.9
    stereo = np.stack([up, right], axis=1)
    return stereo * (0.9 / (float(np.max(np.abs(stereo))) or 1.0))


def _sf_write(name: str, data: np.ndarray, rate: int, fmt: str, subtype: str) -> None:
    """soundfile.write in blocks: libvorbis (inside libsndfile 1.2) overflows its stack on a
    single large write (minutes of audio) and kills the process (libsndfile issue #1095)."""
    import soundfile

    channels = 1 if data.ndim == 1 else data.shape[1]
    with soundfile.SoundFile(name, "w", rate, channels, subtype=subtype, format=fmt) as handle:
        for start in range(0, len(data), 1 << 16):
            handle.write(data[start : start + (1 << 16)])


def write_audio(target: bytes, encoding: str, sources: list[str], seconds: float | None = None) -> int:
    """Write `sources` (clips, end to end, cut to `seconds`) to the path `target` (bytes) in
    `encoding`; returns the file's size. Written in _STAGING, then renamed into place:
    soundfile cannot open names that are not UTF-8."""
    temporary = os.path.join(_STAGING, b"%d-%d.part" % (os.getpid(), time.monotonic_ns()))
    name = os.fsdecode(temporary)
    try:
        if encoding in ("copy", "hidden-copy"):
            shutil.copyfile(sources[0], name)
        elif encoding == "mp3-cut-half":
            data = Path(sources[0]).read_bytes()
            Path(name).write_bytes(data[: len(data) // 2 + 777])  # cut mid-frame
        else:
            mono, rate = _audio(sources, seconds)
            if encoding in ("flac", "flac-upper-ext"):
                _sf_write(name, mono, rate, "FLAC", "PCM_16")
            elif encoding == "wav":
                _sf_write(name, mono, rate, "WAV", "PCM_16")
            elif encoding == "wav-44k-stereo-float":
                _sf_write(name, _stereo_44k(mono, rate), 44100, "WAV", "FLOAT")
            elif encoding == "ogg":
                _sf_write(name, mono, rate, "OGG", "VORBIS")
            elif encoding in ("mp3-44k-stereo", "concat-mp3"):
                _sf_write(name, _stereo_44k(mono, rate), 44100, "MP3", "MPEG_LAYER_III")
            elif encoding == "concat-flac":
                _sf_write(name, mono, rate, "FLAC", "PCM_16")
            elif encoding == "concat-ogg":
                _sf_write(name, mono, rate, "OGG", "VORBIS")
            else:
                raise ValueError(encoding)
        os.rename(temporary, target)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    return os.stat(target).st_size


def _write_task(task: tuple) -> int:
    return write_audio(*task)


#: Files are written here (an ASCII-named folder on the library's file system), then renamed
#: into place.
_STAGING = b""


def _set_staging(staging: bytes) -> None:
    global _STAGING
    _STAGING = staging


def run_writes(tasks: list[tuple], jobs: int) -> None:
    if not tasks:
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_set_staging, initargs=(_STAGING,)) as pool:
        for _ in pool.map(_write_task, tasks, chunksize=8):
            pass


# --------------------------------------------------------------------------- the library


class Library:
    """The generated folder and what each entry in it is expected to be.

    `good`: path -> description of an audio file qbsd must index (path as os.fsdecode gives
    it, i.e. as the store returns it). `bad`: path -> kind, for entries qbsd must report as
    failures. Everything else under the root (non-audio files, a symlinked folder) must be
    ignored.
    """

    def __init__(self, root: Path, clips: list[str], seed: int):
        self.root = root
        self.clips = clips
        self.rng = np.random.default_rng(seed)
        self.good: dict[str, dict] = {}
        self.bad: dict[str, str] = {}
        self.folders: list[bytes] = []
        self.counter = 0

    # names ------------------------------------------------------------------
    def _pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def make_folders(self, count: int) -> None:
        root = os.fsencode(str(self.root))
        self.folders = [root]
        specials = [
            "Café".encode(),  # NFC
            unicodedata.normalize("NFD", "Café").encode(),  # NFD: a different folder
            b"Latin-1 caf\xe9 (not UTF-8)",
            b"new\nline folder",
            "a/b".replace("/", "\u2215").encode(),  # division slash
            ("deep/" * 6).rstrip("/").encode(),
        ]
        for special in specials:
            self.folders.append(os.path.join(root, special))
        while len(self.folders) < count:
            depth = int(self.rng.choice([1, 2, 2, 3, 3, 4]))
            parts = [self._pick(ARTISTS)]
            if depth >= 2:
                parts.append(self._pick(ALBUMS))
            if depth >= 3:
                parts.append(self._pick(["CD 1", "CD 2", "extras", 'Bonus "tracks"', "ボーナス"]))
            if depth >= 4:
                parts.append(self._pick(["old", "new", "misc ☂"]))
            self.folders.append(os.path.join(root, *[p.encode() for p in parts]))
        self.folders = list(dict.fromkeys(self.folders))
        for folder in self.folders:
            os.makedirs(folder, exist_ok=True)

    def new_name(self, ext: str, hidden: bool = False, folder: bytes | None = None) -> bytes:
        self.counter += 1
        title = self._pick(TITLES)
        if self.counter % 97 == 0:
            title = "new\nline"
        if self.counter % 89 == 0:
            title = title + " \udce9 bytes"  # a Latin-1 byte in the middle: not UTF-8
        name = f"{'.' if hidden else ''}{self.counter:05d} - {title}{ext}"
        if self.counter % 53 == 0:
            name = unicodedata.normalize("NFD", name)
        folder = folder if folder is not None else self._pick(self.folders)
        return os.path.join(folder, os.fsencode(name))

    # good files -------------------------------------------------------------
    def good_task(self, kind: str, folder: bytes | None = None) -> tuple:
        """(target, encoding, sources, seconds) for one new good file; recorded in self.good."""
        if kind == "concat":
            count = int(self.rng.integers(2, 7))  # 1-3 minutes: up to 6 segments, 4 analysed
            sources = [self._pick(self.clips) for _ in range(count)]
            encoding = self._pick(["concat-mp3", "concat-flac", "concat-ogg"])
            ext = {"concat-mp3": ".mp3", "concat-flac": ".flac", "concat-ogg": ".ogg"}[encoding]
            seconds = None
        else:
            sources = [self._pick(self.clips)]
            encoding, ext, seconds = kind, EXT_OF[kind], None
        target = self.new_name(ext, hidden=(kind == "hidden-copy"), folder=folder)
        length = CLIP_SECONDS * len(sources) / (2 if kind == "mp3-cut-half" else 1)
        self.good[os.fsdecode(target)] = {"kind": kind, "encoding": encoding, "seconds": length}
        return target, encoding, sources, seconds

    def add_good(self, count: int, jobs: int, folder: bytes | None = None) -> None:
        kinds = [k for k, _ in GOOD_KINDS]
        weights = np.array([w for _, w in GOOD_KINDS])
        chosen = self.rng.choice(len(kinds), size=count, p=weights / weights.sum())
        # every kind at least once when there is room, so a small run covers them all
        if count >= len(kinds):
            chosen[: len(kinds)] = np.arange(len(kinds))
        tasks = [self.good_task(kinds[i], folder) for i in chosen]
        run_writes(tasks, jobs)

    def add_links(self) -> None:
        """Two symbolic links to songs (indexed under the link's path) and one symbolic link
        to a folder (not followed, so nothing under it is indexed)."""
        songs = sorted(p for p, d in self.good.items() if d["kind"] == "copy")[:2]
        for number, song in enumerate(songs):
            link = os.path.join(os.fsencode(str(self.root)), b"link to song %d.mp3" % number)
            os.symlink(os.fsencode(song), link)
            self.good[os.fsdecode(link)] = {"kind": "symlink-to-song", "encoding": "link", "seconds": CLIP_SECONDS}
        target = max(self.folders[1:], key=lambda f: sum(1 for p in self.good if os.fsencode(p).startswith(f + b"/")))
        os.symlink(target, os.path.join(os.fsencode(str(self.root)), b"linked folder (not followed)"))

    def add_ignored(self) -> None:
        """Files qbsd must not look at: no audio extension."""
        for index, name in enumerate(
            [b"cover.jpg", b"notes.txt", b".DS_Store", b"song.mp3.part", b"playlist.m3u", b"README", b"track.mp3.bak"]
        ):
            folder = self.folders[index % len(self.folders)]
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(self.rng.integers(0, 256, 500, dtype=np.uint8).tobytes())

    # bad files --------------------------------------------------------------
    def bad_bytes(self, kind: str) -> tuple[bytes, str]:
        """(contents, extension) of a bad regular file of `kind`."""
        if kind == "empty":
            return b"", self._pick([".mp3", ".flac", ".wav", ".ogg"])
        if kind == "truncated-mp3":
            data = Path(self._pick(self.clips)).read_bytes()
            return data[: int(self.rng.integers(50, 2500))], ".mp3"
        if kind == "random-bytes":
            size = int(self.rng.integers(200, 300_000))
            return self.rng.integers(0, 256, size, dtype=np.uint8).tobytes(), self._pick(RANDOM_EXTS)
        if kind == "text-as-mp3":
            return ("Lyrics: la la la\n" * int(self.rng.integers(1, 400))).encode(), ".mp3"
        if kind == "wav-header-only":
            import soundfile

            with tempfile.NamedTemporaryFile(suffix=".wav") as temporary:
                soundfile.write(temporary.name, np.zeros(0, np.float32), 22050, format="WAV")
                return Path(temporary.name).read_bytes(), ".wav"
        raise ValueError(kind)

    def add_bad(self, count: int, structural: bool = True) -> None:
        """`count` bad entries: with `structural`, the first three are a folder named x.flac,
        a broken symbolic link and a link loop; the rest are regular files of BAD_KINDS."""
        root = os.fsencode(str(self.root))
        made = 0
        if structural:
            specials = []
            folder = os.path.join(self._pick(self.folders[1:]), b"x.flac")
            os.makedirs(folder)
            specials.append((folder, "directory-named-x.flac"))
            broken = os.path.join(root, "broken link → gone.mp3".encode())
            os.symlink(b"/nonexistent/qbsd-load/gone.mp3", broken)
            specials.append((broken, "broken-symlink"))
            loop = os.path.join(self._pick(self.folders), b"loop.ogg")
            os.symlink(os.path.basename(loop), loop)
            specials.append((loop, "symlink-loop"))
            for path, kind in specials[:count]:
                self.bad[os.fsdecode(path)] = kind
                made += 1
        kinds = BAD_KINDS[self.counter % len(BAD_KINDS) :] + BAD_KINDS
        index = 0
        while made < count:
            kind = kinds[index % len(kinds)]
            index += 1
            contents, ext = self.bad_bytes(kind)
            path = self.new_name(ext)
            with open(path, "wb") as handle:
                handle.write(contents)
            self.bad[os.fsdecode(path)] = kind
            made += 1

    # checking the folder itself ---------------------------------------------
    def walk(self) -> tuple[set[str], set[str]]:
        """What is on disk, found independently of the manifest and of qbsd: (regular files
        with an audio extension, following file links but not folder links; other entries
        with an audio extension: folders, broken links, loops)."""
        regular, other = set(), set()
        for folder, directories, names in os.walk(os.fsencode(str(self.root))):
            for name in directories + names:
                path = os.path.join(folder, name)
                if os.path.splitext(name)[1].lower().decode("utf-8", "replace") not in AUDIO_EXTS:
                    continue
                if name in directories and os.path.islink(path):
                    continue
                try:
                    regular_file = os.path.isfile(path)
                except OSError:
                    regular_file = False
                (regular if regular_file else other).add(os.fsdecode(path))
        return regular, other


# --------------------------------------------------------------------------- running qbsd


class Qbsd:
    def __init__(self, home: Path):
        executable = shutil.which("qbsd")
        self.command = [executable] if executable else [sys.executable, "-m", "qbsd_cli"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("QBSD_")}
        env["XDG_DATA_HOME"] = str(home / "xdg-data")
        env["XDG_CACHE_HOME"] = str(home / "xdg-cache")
        if not executable:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.env = env
        self.home = home

    def run(self, *args: str) -> dict:
        """Run qbsd; wall and CPU seconds (user+sys of it and its reaped workers), exit code,
        stdout and stderr."""
        out_path, err_path = self.home / "stdout.txt", self.home / "stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            child = subprocess.Popen(
                self.command + list(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env, cwd=self.home
            )
            _pid, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
        return {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "code": os.waitstatus_to_exitcode(status),
            "stdout": out_path.read_bytes().decode("utf-8", "replace"),
            "stderr": err_path.read_bytes().decode("utf-8", "replace"),
        }


def parse_summary(stderr: str) -> dict | None:
    matches = list(SUMMARY.finditer(stderr))
    match = matches[-1] if matches else None
    if match is None:
        return None
    keys = ["added", "updated", "removed", "failed", "unchanged", "songs"]
    summary = {key: int(match.group(i + 1)) for i, key in enumerate(keys)}
    summary["seconds"] = float(match.group(7))
    summary["line"] = match.group(0)
    return summary


# --------------------------------------------------------------------------- checks


class Checks:
    def __init__(self):
        self.rows: list[tuple[str, str, bool, str]] = []

    def add(self, stage: str, name: str, passed: bool, detail: str = "") -> bool:
        self.rows.append((stage, name, bool(passed), detail))
        log(f"{'PASS' if passed else 'FAIL'} [{stage}] {name}{': ' + detail if detail else ''}")
        return passed

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if not row[2])


def _sample(paths, limit: int = 3) -> str:
    paths = sorted(paths)
    shown = ", ".join(f"`{display(p)!r}`" for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _difference(name_a: str, a: set, name_b: str, b: set) -> str:
    if a == b:
        return f"{len(a)} identical"
    parts = []
    if a - b:
        parts.append(f"{len(a - b)} only in {name_a} ({_sample(a - b)})")
    if b - a:
        parts.append(f"{len(b - a)} only in {name_b} ({_sample(b - a)})")
    return "; ".join(parts)


def read_store(index: Path) -> dict:
    from qbsd_cli.store import IndexStore

    with IndexStore(index, create=False) as store:
        known = store.known_files()
        failures = dict(store.failures())
        songs = store.song_count()
    # The store's song revision grows with every put_song: unchanged means nothing was written.
    connection = sqlite3.connect(f"file:{index / 'songs.sqlite'}?mode=ro", uri=True)
    try:
        revision = int(connection.execute("SELECT value FROM meta WHERE key = 'song_rev'").fetchone()[0])
    finally:
        connection.close()
    return {"known": known, "failures": failures, "songs": songs, "rev": revision}


def verify_store(checks: Checks, stage: str, library: Library, index: Path, errors_run: dict) -> dict:
    """The store against the folder: songs, their sizes and mtimes, failures, --errors."""
    state = read_store(index)
    known = state["known"]
    stored_ok = {p for p, (_s, _m, status) in known.items() if status == "ok"}
    stored_failed = {p for p, (_s, _m, status) in known.items() if status == "failed"}
    good, bad = set(library.good), set(library.bad)
    checks.add(
        stage,
        "stored songs == good audio files on disk",
        stored_ok == good,
        _difference("store", stored_ok, "disk", good),
    )
    stale = [p for p in stored_ok & good if (os.stat(p).st_size, os.stat(p).st_mtime_ns) != known[p][:2]]
    checks.add(
        stage,
        "stored size and mtime == the file's, for every song",
        not stale,
        f"{len(stale)} stale ({_sample(stale)})" if stale else f"{len(stored_ok & good)} match",
    )
    checks.add(
        stage, "stored failures == bad files", stored_failed == bad, _difference("store", stored_failed, "disk", bad)
    )
    checks.add(
        stage, "song_count() == number of good files", state["songs"] == len(good), f"{state['songs']} vs {len(good)}"
    )
    listed = []
    for line in errors_run["stdout"].splitlines():
        if line.strip():
            listed.append(json.loads(line)["path"])
    expected = sorted(display(p) for p in bad)
    checks.add(
        stage,
        "`qbsd index --errors` lists exactly the bad files",
        errors_run["code"] == 0 and sorted(listed) == expected and len(listed) == len(set(listed)),
        _difference("--errors", set(listed), "bad files", set(expected))
        + (f"; exit {errors_run['code']}" if errors_run["code"] else ""),
    )
    return state


def check_summary(checks: Checks, stage: str, run: dict, expected: dict, code: int) -> None:
    summary = run["summary"]
    if not checks.add(stage, "summary line printed", summary is not None, "" if summary else run["stderr"][-500:]):
        return
    got = {k: summary[k] for k in expected}
    checks.add(
        stage,
        "summary counts as expected",
        got == expected,
        ", ".join(f"{k} {got[k]}" + ("" if got[k] == v else f" (expected {v})") for k, v in expected.items()),
    )
    checks.add(stage, f"exit status {code}", run["code"] == code, f"exit {run['code']}")


def count_error_lines(stderr: str) -> int:
    return sum(1 for line in stderr.splitlines() if line.startswith("qbsd: "))


# --------------------------------------------------------------------------- the machine


def loaded_by_others() -> list[str]:
    try:
        found = subprocess.run(["pgrep", "-f", LOADED_BY], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [pid for pid in found.split() if pid and int(pid) != os.getpid()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "qbsd_cli"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + (" + uncommitted changes in qbsd_cli/" if dirty else "")


def analysed_seconds(descriptions) -> float:
    return sum(min(d["seconds"], SEGMENT_SECONDS * MAX_SEGMENTS) for d in descriptions)


# --------------------------------------------------------------------------- the benchmark


def mutate(library: Library, n_add: int, n_change: int, n_delete: int, jobs: int) -> dict:
    """Add, change, delete; a few songs turned bad, bad files mended, bad files deleted and
    added, a few songs renamed. Returns the expected summary counts of the next run."""
    rng = library.rng
    regular_good = sorted(p for p, d in library.good.items() if d["kind"] != "symlink-to-song")
    linked = {
        os.fsdecode(os.path.realpath(os.fsencode(p))) for p, d in library.good.items() if d["kind"] == "symlink-to-song"
    }

    # A whole folder goes (with any bad entries in it): a leaf folder of 2-15 songs, none of
    # them the target of a link; its songs count among the n_delete deleted ones.
    def inside(path: str, folder: bytes) -> bool:
        return os.fsencode(path).startswith(folder + b"/")

    leaves = [f for f in library.folders[1:] if not any(g != f and g.startswith(f + b"/") for g in library.folders)]
    gone_folder, gone_good, gone_bad = None, [], []
    for folder in sorted(leaves, key=lambda f: (len(f), f)):
        songs = [p for p in library.good if inside(p, folder)]
        if 2 <= len(songs) <= min(15, n_delete) and not any(p in linked for p in songs):
            gone_folder, gone_good = folder, songs
            gone_bad = [p for p in library.bad if inside(p, folder)]
            break
    if gone_folder is not None:
        shutil.rmtree(gone_folder)
        library.folders.remove(gone_folder)
        for path in gone_good:
            del library.good[path]
        for path in gone_bad:
            del library.bad[path]
    candidates = [p for p in regular_good if p not in linked and p in library.good]
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    n_spoil, n_rename = 3, 5
    deleted = order[: n_delete - len(gone_good)]
    rest = order[len(deleted) :]
    changed = rest[:n_change]
    spoiled = rest[n_change : n_change + n_spoil]
    renamed = rest[n_change + n_spoil : n_change + n_spoil + n_rename]

    for path in deleted:
        os.unlink(path)
        del library.good[path]
    # changes: other audio, same extension, 20-29 s so that even a WAV changes size
    tasks = []
    for path in changed:
        description = library.good[path]
        encoding = description["encoding"]
        if encoding in ("copy", "hidden-copy", "mp3-cut-half"):
            encoding = "mp3-44k-stereo"
        seconds = float(rng.uniform(20, 29))
        tasks.append((os.fsencode(path), encoding, [library._pick(library.clips)], seconds))
        description.update(encoding=encoding, seconds=seconds, kind=description["kind"] + " (changed)")
    run_writes(tasks, jobs)
    # songs turned bad: overwritten with random bytes
    for path in spoiled:
        with open(path, "wb") as handle:
            handle.write(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
        del library.good[path]
        library.bad[path] = "random-bytes (was a song)"
    # renames: a move within the library is a delete plus an add
    for path in renamed:
        raw = os.fsencode(path)
        stem, ext = os.path.splitext(raw)
        target = stem + " (renamed ✓)".encode() + ext
        os.rename(raw, target)
        library.good[os.fsdecode(target)] = library.good.pop(path)
    # bad files: a few mended (valid audio written over them), a few deleted, a few added
    regular_bad = sorted(
        p
        for p, kind in library.bad.items()
        if kind in BAD_KINDS and os.path.splitext(p)[1].lower() in (".mp3", ".flac", ".wav", ".ogg")
    )
    mended = regular_bad[:3]
    bad_deleted = regular_bad[3:6]
    tasks = []
    for path in mended:
        ext = os.path.splitext(path)[1].lower()
        encoding = {".mp3": "mp3-44k-stereo", ".flac": "flac", ".wav": "wav", ".ogg": "ogg"}[ext]
        del library.bad[path]
        tasks.append((os.fsencode(path), encoding, [library._pick(library.clips)], None))
        library.good[path] = {"kind": f"mended {ext}", "encoding": encoding, "seconds": CLIP_SECONDS}
    run_writes(tasks, jobs)
    for path in bad_deleted:
        os.unlink(path)
        del library.bad[path]
    n_new_bad = 3
    library.add_bad(n_new_bad, structural=False)
    # new songs: most into existing folders, some into a new nested folder
    new_folder = os.path.join(os.fsencode(str(library.root)), b"Added Later", 'Ärtist "New"'.encode(), b"2024")
    os.makedirs(new_folder)
    library.folders.append(new_folder)
    in_new_folder = min(10, n_add // 3)
    library.add_good(n_add - in_new_folder, jobs)
    library.add_good(in_new_folder, jobs, folder=new_folder)
    return {
        "added": n_add + n_rename + len(mended),
        "updated": n_change,
        "removed": n_delete + n_rename + len(bad_deleted) + len(gone_bad),
        "failed": len(library.bad),
        "unchanged": len(library.good) - n_add - n_rename - len(mended) - n_change,
        "_detail": {
            "added": n_add,
            "changed": n_change,
            "deleted": n_delete,
            "of them in a deleted folder": len(gone_good),
            "bad entries in that folder": len(gone_bad),
            "spoiled": n_spoil,
            "renamed": n_rename,
            "mended": len(mended),
            "bad deleted": len(bad_deleted),
            "bad added": n_new_bad,
        },
    }


def run_index(qbsd: Qbsd, library: Library, index: Path, label: str) -> dict:
    log(f"{label}: qbsd index ({len(library.good)} songs, {len(library.bad)} bad files expected)")
    run = qbsd.run("index", str(library.root), "--index", str(index))
    run["summary"] = parse_summary(run["stderr"])
    run["error_lines"] = count_error_lines(run["stderr"])
    log(
        f"{label}: {run['wall']:.1f} s wall, exit {run['code']}: "
        f"{run['summary']['line'] if run['summary'] else run['stderr'][-300:]}"
    )
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="good audio files (default 2000)")
    parser.add_argument("--bad", type=int, default=40, help="bad entries mixed in (default 40)")
    parser.add_argument(
        "--changes",
        type=int,
        default=50,
        help="files added, changed and deleted each before the second run (default 50)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "LOAD.md")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clips", type=Path, default=CLIPS_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (debugging)")
    args = parser.parse_args()
    if args.bad < 3:
        parser.error("--bad must be at least 3 (a folder named x.flac, a broken link, a link loop)")
    clips = sorted(str(p) for p in args.clips.glob("*.mp3"))
    if not clips:
        parser.error(f"no clips in {args.clips}")
    changes = min(args.changes, max(1, args.files // 5))
    jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    started = time.time()
    load_start, others_start = os.getloadavg(), loaded_by_others()
    home = Path(tempfile.mkdtemp(prefix="qbsd-load-"))
    if home.resolve().is_relative_to(REPO):
        raise SystemExit("the temporary folder must not be inside the repository")
    checks = Checks()
    runs: dict[str, dict] = {}
    facts: dict = {}
    try:
        root, index = home / "library", home / "index"
        root.mkdir()
        (home / "staging").mkdir()
        _set_staging(os.fsencode(str(home / "staging")))
        qbsd = Qbsd(home)
        facts["qbsd"] = " ".join(Path(qbsd.command[0]).name if i == 0 else part for i, part in enumerate(qbsd.command))
        library = Library(root, clips, args.seed)

        log(f"building a library of {args.files} songs and {args.bad} bad entries in {root}")
        t0 = time.perf_counter()
        library.make_folders(max(8, args.files // 12))
        library.add_good(args.files - 2, jobs)
        library.add_links()
        library.add_bad(args.bad)
        library.add_ignored()
        facts["build_seconds"] = time.perf_counter() - t0
        facts["folders"] = sum(1 for _ in os.walk(root))
        facts["bytes"] = sum(os.lstat(os.path.join(f, n)).st_size for f, _d, ns in os.walk(root) for n in ns)
        facts["kinds"] = collections.Counter(d["kind"] for d in library.good.values())
        facts["bad_kinds"] = collections.Counter(library.bad.values())
        facts["good"], facts["bad"] = len(library.good), len(library.bad)
        facts["library_seconds"] = sum(d["seconds"] for d in library.good.values())
        log(
            f"built in {facts['build_seconds']:.0f} s: {facts['good']} songs, {facts['bad']} bad, "
            f"{facts['bytes'] / 1e6:.0f} MB in {facts['folders']} folders"
        )

        stage = "build"
        regular, other = library.walk()
        checks.add(
            stage,
            "the folder holds exactly the intended files (independent walk)",
            regular == set(library.good) | {p for p, k in library.bad.items() if os.path.isfile(p)}
            and other == {p for p in library.bad if not os.path.isfile(p)},
            f"{len(regular)} regular audio-named files, {len(other)} other audio-named entries",
        )

        # ---- 1. first index
        stage = "1: first index"
        run = runs[stage] = run_index(qbsd, library, index, stage)
        run["songs_analysed"] = len(library.good) + sum(1 for p in library.bad if os.path.isfile(p))
        run["analysed_seconds"] = analysed_seconds(library.good.values())
        check_summary(
            checks,
            stage,
            run,
            {"added": len(library.good), "updated": 0, "removed": 0, "failed": len(library.bad), "unchanged": 0},
            code=1,
        )
        checks.add(
            stage,
            "one `qbsd: PATH: reason` line per bad file on stderr",
            run["error_lines"] == len(library.bad),
            f"{run['error_lines']} lines, {len(library.bad)} bad",
        )
        errors = qbsd.run("index", "--errors", "--index", str(index))
        state = verify_store(checks, stage, library, index, errors)
        facts["reasons"] = collections.Counter(
            re.sub(r"\d+(\.\d+)?", "N", reason) for reason in state["failures"].values()
        )

        # ---- 2. add, change, delete, re-index
        stage = "2: after changes"
        log(f"changing the library: +{changes} / ~{changes} / -{changes} and a few more")
        expected = mutate(library, changes, changes, changes, jobs)
        facts["mutation"] = expected.pop("_detail")
        run = runs[stage] = run_index(qbsd, library, index, stage)
        run["songs_analysed"] = (
            expected["added"] + expected["updated"] + facts["mutation"]["spoiled"] + facts["mutation"]["bad added"]
        )
        check_summary(checks, stage, run, expected, code=1)
        new_failures = facts["mutation"]["spoiled"] + facts["mutation"]["bad added"]
        checks.add(
            stage,
            "an error line for each new failure only",
            run["error_lines"] == new_failures,
            f"{run['error_lines']} lines, {new_failures} new failures",
        )
        errors = qbsd.run("index", "--errors", "--index", str(index))
        state = verify_store(checks, stage, library, index, errors)

        # ---- 3. unchanged library: nothing analysed, three times (timed)
        stage = "3: unchanged"
        before = state
        walls = []
        for attempt in range(3):
            run = run_index(qbsd, library, index, f"{stage} #{attempt + 1}")
            walls.append(run["wall"])
            if attempt == 0:
                runs[stage] = run
                check_summary(
                    checks,
                    stage,
                    run,
                    {
                        "added": 0,
                        "updated": 0,
                        "removed": 0,
                        "failed": len(library.bad),
                        "unchanged": len(library.good),
                    },
                    code=0,
                )
                checks.add(
                    stage,
                    "no error lines (old failures are not retried)",
                    run["error_lines"] == 0,
                    f"{run['error_lines']} lines",
                )
        runs[stage]["walls"] = walls
        runs[stage]["songs_analysed"] = 0
        after = read_store(index)
        checks.add(
            stage,
            "nothing analysed or written: song revision unchanged after 3 runs",
            after["rev"] == before["rev"] and after["known"] == before["known"],
            f"song_rev {before['rev']} -> {after['rev']}",
        )
        errors = qbsd.run("index", "--errors", "--index", str(index))
        verify_store(checks, stage, library, index, errors)

        # ---- 4. the index answers
        stage = "4: queries"
        query = sorted(p for p, d in library.good.items() if d["kind"] == "copy")[0]
        similar = qbsd.run("similar", query, "--top", "10", "--index", str(index), "--format", "json")
        hits = [json.loads(line) for line in similar["stdout"].splitlines() if line.strip()]
        checks.add(
            stage,
            "`qbsd similar` gives 10 library songs",
            similar["code"] == 0
            and len(hits) == 10
            and all(h["path"] in {display(p) for p in library.good} for h in hits),
            f"exit {similar['code']}, {len(hits)} results, {similar['wall']:.2f} s",
        )
        search = qbsd.run("search", "calm", "--top", "10", "--index", str(index), "--format", "json")
        hits = [json.loads(line) for line in search["stdout"].splitlines() if line.strip()]
        checks.add(
            stage,
            "`qbsd search calm` gives 10 library songs",
            search["code"] == 0 and len(hits) == 10,
            f"exit {search['code']}, {len(hits)} results, {search['wall']:.2f} s",
        )
        facts["query_walls"] = (similar["wall"], search["wall"])
    finally:
        if args.keep:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    facts.update(
        load_start=load_start,
        load_end=os.getloadavg(),
        others_start=others_start,
        others_end=loaded_by_others(),
        total_minutes=(time.time() - started) / 60,
        jobs=jobs,
        changes=changes,
    )
    report = render(args, facts, runs, checks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 1 if checks.failed else 0


# --------------------------------------------------------------------------- the report


def render(args, facts: dict, runs: dict, checks: Checks) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    loaded = bool(facts["others_start"] or facts["others_end"])
    command = (
        "python benchmarks/load.py"
        + (f" --files {args.files}" if args.files != 2000 else "")
        + (f" --bad {args.bad}" if args.bad != 40 else "")
    )
    lines = [
        "# qbsd under load: indexing a messy library",
        "",
        f"Generated by `{command}` on {now}; {facts['total_minutes']:.1f} min in all.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {cpu_model()} |",
        f"| cores | {os.cpu_count()} ({facts['jobs']} usable; `qbsd index` ran with its default --jobs, "
        f"i.e. {facts['jobs']}) |",
        f"| load average at start / end | {facts['load_start'][0]:.2f} / {facts['load_end'][0]:.2f} |",
        f"| other CPU-bound jobs | {'yes: `' + LOADED_BY + '` (cross-validation) was running, ' + str(len(facts['others_start'])) + ' processes at start, ' + str(len(facts['others_end'])) + ' at end' if loaded else 'none found (`' + LOADED_BY + '` not running)'} |",
        f"| software | Python {platform.python_version()}, {platform.system()} {platform.release()} |",
        f"| qbsd | `{facts['qbsd']}` at {git_state()}, shipped model (`models/qbsd.onnx`) |",
        f"| date | {now} |",
        "",
    ]
    if loaded:
        lines += [
            "> **The machine was loaded**: cross-validation (`scratch/cv.py`) was using its cores "
            "throughout, so wall times are pessimistic (compare wall with CPU time).",
            "",
        ]
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(facts["kinds"].items(), key=lambda kv: -kv[1]))
    bad_kinds = ", ".join(
        f"{kind} {count}" for kind, count in sorted(facts["bad_kinds"].items(), key=lambda kv: -kv[1])
    )
    lines += [
        "## The library",
        "",
        f"Built from the 800 clips of `../shared/data/moods4q/audio` in a temporary folder (deleted "
        f"afterwards) in {facts['build_seconds']:.0f} s: **{facts['good']} audio files** "
        f"({facts['library_seconds'] / 3600:.1f} h, {facts['bytes'] / 1e6:.0f} MB) in {facts['folders']} "
        f"nested folders, and **{facts['bad']} bad entries** mixed in.",
        "",
        f"- audio: {kinds}. Re-encodings are written with soundfile: FLAC/WAV/OGG at the clips' "
        f"22.05 kHz mono, MP3 and a float WAV variant at 44.1 kHz stereo; concatenations join 2-6 "
        f"clips (1-3 min) as MP3, FLAC or OGG; cut-half MP3s end mid-frame but decode.",
        f"- bad: {bad_kinds}.",
        "- names: spaces, single/double/curly quotes, `$(...)`, backticks, backslashes, `;`, `%`, "
        "CJK/Cyrillic/Arabic/Devanagari, emoji, NFC and NFD forms of the same name (two folders), a "
        "newline in folder and file names, bytes that are not UTF-8 (Latin-1), leading `-` and spaces, "
        "upper-case `.FLAC`, hidden `.name.mp3` files; two symbolic links to songs (indexed under the "
        "link's path); a symbolic link to a folder (not followed); non-audio files (cover.jpg, "
        "song.mp3.part, ...) that must be ignored.",
        f"- second run: {', '.join(f'{k} {v}' for k, v in facts['mutation'].items())} (changed files "
        "are rewritten with other audio, 20-29 s, so size and mtime change; renames count as removed "
        "+ added; spoiled songs are overwritten with random bytes; mended bad files get valid audio).",
        "",
        "## Runs",
        "",
        "`qbsd index LIBRARY --index INDEX` as a child process; wall = whole process, CPU = user+sys "
        "of it and its workers; files/s = files analysed per wall second.",
        "",
        "| run | files analysed | wall s | CPU s | qbsd's own s | files/s | exit | summary line |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, run in runs.items():
        summary = run["summary"]
        rate = run["songs_analysed"] / run["wall"] if run["songs_analysed"] else 0
        wall = f"{run['wall']:.1f}"
        if "walls" in run:
            wall = (
                f"{statistics.median(run['walls']):.2f} (median of {len(run['walls'])}: "
                + ", ".join(f"{w:.2f}" for w in run["walls"])
                + ")"
            )
        lines.append(
            f"| {name} | {run['songs_analysed']} | {wall} | {run['cpu']:.1f} | "
            f"{summary['seconds'] if summary else '?'} | {rate:.1f} | {run['code']} | "
            f"`{summary['line'] if summary else 'no summary'}` |"
        )
    first = runs.get("1: first index")
    if first and first.get("analysed_seconds"):
        lines += [
            "",
            f"First run: {first['analysed_seconds'] / 3600:.1f} h of audio analysed "
            f"(at most 4 x 30 s per file) in {first['wall']:.0f} s = "
            f"{first['analysed_seconds'] / first['wall']:.0f}x realtime on {facts['jobs']} "
            f"busy cores.",
        ]
    if "query_walls" in facts:
        lines += [
            "",
            f"`qbsd similar SONG --top 10`: {facts['query_walls'][0]:.2f} s; `qbsd search calm "
            f"--top 10`: {facts['query_walls'][1]:.2f} s (whole processes).",
        ]
    lines += [
        "",
        "## Failures reported by `qbsd index --errors`",
        "",
        "| reason (numbers as N) | files |",
        "|---|---:|",
    ]
    for reason, count in sorted(facts.get("reasons", {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"| {reason} | {count} |")
    passed = len(checks.rows) - checks.failed
    lines += [
        "",
        "## Checks",
        "",
        f"**{passed} of {len(checks.rows)} passed**" + (f", **{checks.failed} failed**" if checks.failed else "") + ".",
        "",
        "| stage | check | result | detail |",
        "|---|---|---|---|",
    ]
    for stage, name, ok, detail in checks.rows:
        detail = detail.replace("|", "\\|").replace("\n", "\\n")
        lines.append(f"| {stage} | {name} | {'pass' if ok else '**FAIL**'} | {detail} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
