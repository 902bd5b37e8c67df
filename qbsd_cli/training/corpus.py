"""The unlabelled music corpus for distillation: game soundtracks from Debian packages.

    python -m qbsd_cli.training.corpus fetch [--cache DIR]    # apt-get download + dpkg -x, resumable
    python -m qbsd_cli.training.corpus report [--cache DIR]   # hours of audio and formats found

The cache (default ~/.cache/qbsd/corpus, never inside the repository: the audio is not
ours to commit) holds `debs/` (the downloaded .deb files), `root/<package>/` (each package
extracted, with a `.done` marker once complete) and `manifest.json` (the music files).

Only the packages of `PACKAGES` are used: issue 10 keeps every other Debian music package
aside for independent tests (issue 20 added twelve game data packages, the last twelve of
`DATA_PACKAGES`; all twelve exist in Debian 12 "bookworm"). Five are soundtracks as a whole;
of the game data packages only the music counts. A file is music when it is an audio file
under a music folder (a path component in `MUSIC_FOLDERS`; for the soundtrack packages,
anywhere), a tracker module anywhere, or a file a package's `MUSIC_PATTERNS` name (Freeciv's
`stdmusic/`, Powermanga's `sound/*/music_*`, Funny Boat's one song beside its effects), not
excluded by its `NOT_MUSIC_PATTERNS` (the wind loop in Flare's `music/`); see
`_is_music_path`. It must also last more than `MIN_MUSIC_SECONDS`, which leaves out jingles
and sound effects kept beside the music. Zip archives (.pk3, .zip) are unpacked, their music
members only: Nexuiz's and UFO:AI's soundtracks and 0 A.D.'s music (`public.zip`) are inside
one. XBlast's songs are headerless PCM, given WAV headers. Tracker modules (.xm, .it, ...)
are listed but not decodable: libsndfile cannot render them.

What `fetch` then `report` found (Debian 12): 29 packages, 405 decodable
music files, 18.81 h (ogg 401 files 18.76 h, wav 4 files 0.04 h); the 17 packages before
issue 20 give 14.52 h, the twelve of issue 20 4.29 h: 0ad-data 61 files 2.91 h (all inside
public.zip), flare-game 11 files 0.61 h, redeclipse-data 12 files 0.39 h,
extremetuxracer-data 6 files 0.15 h, powermanga-data 3 files 0.12 h, funnyboat 1 file
0.05 h, freeciv-data 1 file 0.03 h, solarwolf 1 file 0.02 h, all Ogg Vorbis; pingus-data's
music is 20 tracker modules (19 .it, 1 .s3m), listed but 0 h, as are Solarwolf's 2 .xm and
Red Eclipse's one .it; boswars-data (only an intro video), openarena-data (its two .pk3 hold
effects and voices: OpenArena's music ships in other packages, not used) and pokerth-data
(effects only) have no music.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

#: Packages whose audio is all music.
SOUNDTRACK_PACKAGES = ("drascula-music", "nexuiz-music", "ufoai-music", "xblast-tnt-musics", "fb-music-high")
#: Game data packages, of which only the music folders are taken.
DATA_PACKAGES = (
    "supertux-data",
    "supertuxkart-data",
    "megaglest-data",
    "widelands-data",
    "freedroidrpg-data",
    "hedgewars-data",
    "neverball-data",
    "xmoto-data",
    "openclonk-data",
    "warmux-data",
    "lincity-ng-data",
    "ri-li-data",
    # issue 20, item 3
    "0ad-data",
    "redeclipse-data",
    "flare-game",
    "boswars-data",
    "extremetuxracer-data",
    "openarena-data",
    "pingus-data",
    "freeciv-data",
    "pokerth-data",
    "powermanga-data",
    "funnyboat",
    "solarwolf",
)
PACKAGES = SOUNDTRACK_PACKAGES + DATA_PACKAGES
#: Folder names that hold a game's music (compared in lower case).
MUSIC_FOLDERS = frozenset({"music", "musics", "mus", "soundtrack", "soundtracks"})
#: Music a package keeps outside any music folder: shell patterns (fnmatch, `*` spans
#: folders) on the path inside the package's tree.
MUSIC_PATTERNS = {
    # Freeciv's music set "stdmusic" (one piece in 3.0; its effects are in stdsounds/)
    "freeciv-data": ("usr/share/games/freeciv/stdmusic/*",),
    # Powermanga's three songs (music_menu, music_game, music_congratulations); the effects
    # are sounds/sound_*.wav
    "powermanga-data": ("usr/share/games/powermanga/sound/*/music_*",),
    # Funny Boat's one song, beside its four sub-second effects in data/
    "funnyboat": ("usr/share/games/funnyboat/data/JDruid-*",),
}
#: Audio in a music folder that is not music: shell patterns as for MUSIC_PATTERNS.
NOT_MUSIC_PATTERNS = {
    # a minute of wind, which Flare plays as a map's "music"
    "flare-game": ("*/music/wind_ambient.*",),
}
#: Archives unpacked (their music members only): zip files, as Quake-style .pk3 are.
ARCHIVE_EXTENSIONS = frozenset({".pk3", ".zip"})
#: Shorter files are jingles, stings or effects, not music to learn from.
MIN_MUSIC_SECONDS = 20.0
#: Formats libsndfile (hence qbsd_cli.audio) decodes.
SOUNDFILE_FORMATS = frozenset({"ogg", "oga", "opus", "flac", "wav", "mp3", "aif", "aiff"})
#: Module (tracker) and MIDI formats: note data, not audio; libsndfile cannot render them.
SEQUENCED_FORMATS = frozenset({"xm", "mod", "it", "s3m", "mid", "midi", "umx", "mtm", "669"})
#: Signatures (offset, bytes) of sequenced formats, so that a `language.It` is not an .it.
SEQUENCED_MAGIC = {
    "xm": (0, b"Extended Module:"),
    "it": (0, b"IMPM"),
    "s3m": (44, b"SCRM"),
    "mid": (0, b"MThd"),
    "midi": (0, b"MThd"),
}
DEFAULT_CACHE = os.path.expanduser("~/.cache/qbsd/corpus")


def _log(message: str) -> None:
    print(message, flush=True)


def _deb_of(debs_dir: str, package: str) -> str | None:
    found = sorted(glob.glob(os.path.join(debs_dir, f"{package}_*.deb")))
    return found[-1] if found else None


def _unpack_archives(tree: str, package: str, log=_log) -> None:
    """Extract the music members of the zip archives under `tree` (Quake-style .pk3 and
    plain .zip) into `<archive>.d/`: Nexuiz and UFO:AI ship their whole soundtrack inside a
    .pk3, 0 A.D. its music inside `public.zip`. A member is taken when it is an audio file
    that `_is_music_path` accepts at `<archive>.d/<member>` (so only a data package's music
    folders are unpacked, not the archive's effects and voices)."""
    import zipfile

    for folder, _, names in os.walk(tree):
        for name in sorted(names):
            if os.path.splitext(name)[1].lower() not in ARCHIVE_EXTENSIONS:
                continue
            archive = os.path.join(folder, name)
            unpacked = archive + ".d"
            relative = os.path.relpath(unpacked, tree)
            try:
                with zipfile.ZipFile(archive) as pk3:
                    members = [
                        m
                        for m in pk3.namelist()
                        if os.path.splitext(m)[1].lower().lstrip(".") in SOUNDFILE_FORMATS | SEQUENCED_FORMATS
                        and _is_music_path(package, os.path.join(relative, *m.split("/")))
                    ]
                    pk3.extractall(unpacked, members)
            except zipfile.BadZipFile:
                log(f"  {os.path.relpath(archive, tree)}: not a zip archive, left as it is")
                continue
            log(f"  {os.path.relpath(archive, tree)}: {len(members)} music files unpacked")


def _xblast_songs_to_wav(tree: str, log=_log) -> None:
    """Wrap XBlast's background songs (`sounds/xbsng*.raw`) in WAV headers.

    They are headerless 8-bit unsigned PCM, stereo interleaved, 22050 Hz: the format
    xbsndsrv.c plays them in (SAMPLE_RATE 22050, SAMPLE_SIZE 8, songs flagged not mono).
    8-bit WAV data is unsigned too, so the bytes are copied as they are.
    """
    import wave

    for raw in sorted(glob.glob(os.path.join(tree, "usr/share/games/xblast-tnt/sounds/xbsng*.raw"))):
        with open(raw, "rb") as handle:
            data = handle.read()
        with wave.open(os.path.splitext(raw)[0] + ".wav", "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(1)
            out.setframerate(22050)
            out.writeframes(data[: len(data) // 2 * 2])
    log(
        f"  xblast songs: {len(glob.glob(os.path.join(tree, 'usr/share/games/xblast-tnt/sounds/xbsng*.wav')))} "
        "raw files wrapped as WAV"
    )


def fetch(cache: str = DEFAULT_CACHE, packages=PACKAGES, log=_log) -> dict:
    """Download and extract each package into `cache`, skipping those already done.

    `apt-get download` (after an `apt-get update`) fetches the .deb of the release's
    candidate version (no install, no dependencies); `dpkg -x` unpacks it into a temporary folder that is renamed into
    place once complete, so an interrupted fetch resumes cleanly. Returns
    {"extracted": [package, ...], "missing": {package: apt's reason}}; the missing ones
    are also written to `cache`/fetch.json.
    """
    debs_dir, root = os.path.join(cache, "debs"), os.path.join(cache, "root")
    os.makedirs(debs_dir, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    extracted, missing = [], {}
    for package in packages:
        target = os.path.join(root, package)
        if os.path.exists(os.path.join(target, ".done")):
            extracted.append(package)
            continue
        for leftover in glob.glob(os.path.join(root, f".{package}-*")) + glob.glob(os.path.join(debs_dir, ".*")):
            shutil.rmtree(leftover)  # an interrupted extraction or download
        deb = _deb_of(debs_dir, package)
        if deb is None:
            log(f"{package}: downloading")
            # into a folder of its own, moved up when complete: apt-get writes the .deb in
            # place, and a half-downloaded one must not pass for a finished download
            downloading = tempfile.mkdtemp(prefix=".download-", dir=debs_dir)
            run = subprocess.run(["apt-get", "download", package], cwd=downloading, capture_output=True, text=True)
            fetched = _deb_of(downloading, package)
            if run.returncode != 0 or fetched is None:
                shutil.rmtree(downloading)
                reason = (run.stderr.strip().splitlines() or ["no .deb downloaded"])[-1]
                missing[package] = reason
                log(f"{package}: MISSING ({reason}; has `apt-get update` run?)")
                continue
            deb = os.path.join(debs_dir, os.path.basename(fetched))
            os.rename(fetched, deb)
            shutil.rmtree(downloading)
        log(f"{package}: extracting {os.path.basename(deb)} ({os.path.getsize(deb) / 1e6:.0f} MB)")
        staging = tempfile.mkdtemp(prefix=f".{package}-", dir=root)
        subprocess.run(["dpkg", "-x", deb, staging], check=True)
        _unpack_archives(staging, package, log)
        if package == "xblast-tnt-musics":
            _xblast_songs_to_wav(staging, log)
        with open(os.path.join(staging, ".done"), "w") as handle:
            handle.write(os.path.basename(deb) + "\n")
        if os.path.exists(target):  # a previous attempt's leftovers (no .done): replace them
            shutil.rmtree(target)
        os.rename(staging, target)
        extracted.append(package)
    with open(os.path.join(cache, "fetch.json"), "w") as handle:
        json.dump({"extracted": extracted, "missing": missing}, handle, indent=2)
    return {"extracted": extracted, "missing": missing}


def _duration(path: str) -> float | None:
    """Length in seconds from the file's header (libsndfile), or None if it cannot say."""
    import soundfile

    try:
        info = soundfile.info(path)
    except Exception:  # libsndfile raises several types for formats it does not know
        return None
    return info.frames / info.samplerate if info.samplerate and info.frames > 0 else None


def _is_sequenced(path: str, extension: str) -> bool:
    """Whether `path` is a module/MIDI file: its extension, and its signature where the
    format has one."""
    if extension not in SEQUENCED_FORMATS:
        return False
    if extension not in SEQUENCED_MAGIC:
        return True
    offset, magic = SEQUENCED_MAGIC[extension]
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(len(magic)) == magic


def _is_music_path(package: str, relative: str) -> bool:
    """Whether the audio file at `relative` (inside the package's tree; members of an
    unpacked archive under `<archive>.d/`) is music: anything in a soundtrack package; in a
    data package, a file under a music folder (OpenClonk's `Music.ocg` counts: its group
    extension is dropped) or a tracker module anywhere (Ri-li keeps its .xm/.mod tunes
    beside its effects; effects are never modules), or one the package's MUSIC_PATTERNS
    name, unless its NOT_MUSIC_PATTERNS do."""
    if package in SOUNDTRACK_PACKAGES:
        return True
    path = relative.replace(os.sep, "/")
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in NOT_MUSIC_PATTERNS.get(package, ())):
        return False
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in MUSIC_PATTERNS.get(package, ())):
        return True
    if os.path.splitext(path)[1].lower().lstrip(".") in SEQUENCED_FORMATS:
        return True
    return any(os.path.splitext(part)[0].lower() in MUSIC_FOLDERS for part in path.split("/")[:-1])


def build_manifest(cache: str = DEFAULT_CACHE, log=_log) -> dict:
    """Find the music files of the extracted packages and write `cache`/manifest.json.

    Each entry: path (absolute), package, format (extension, lower case), duration
    (seconds, None for sequenced formats), decodable (by qbsd_cli.audio). Audio files
    under music folders that are too short are counted under `too_short`, not listed.
    """
    root = os.path.join(cache, "root")
    with open(os.path.join(cache, "fetch.json")) as handle:
        fetched = json.load(handle)
    files, too_short, undecodable = [], 0, []
    for package in fetched["extracted"]:
        base = os.path.join(root, package)
        for folder, folders, names in os.walk(base):
            folders.sort()  # a stable manifest order
            for name in sorted(names):
                extension = os.path.splitext(name)[1].lower().lstrip(".")
                if extension not in SOUNDFILE_FORMATS | SEQUENCED_FORMATS:
                    continue
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    # links point at files listed in their own right, or at absolute paths
                    # of an installed system (not this extracted tree)
                    continue
                if not _is_music_path(package, os.path.relpath(path, base)):
                    continue
                if extension in SEQUENCED_FORMATS:
                    if not _is_sequenced(path, extension):
                        continue
                    files.append(
                        {"path": path, "package": package, "format": extension, "duration": None, "decodable": False}
                    )
                    continue
                duration = _duration(path)
                if duration is None:
                    undecodable.append(path)
                    continue
                if duration <= MIN_MUSIC_SECONDS:
                    too_short += 1
                    continue
                files.append(
                    {
                        "path": path,
                        "package": package,
                        "format": extension,
                        "duration": round(duration, 3),
                        "decodable": True,
                    }
                )
    manifest = {
        "packages": fetched["extracted"],
        "missing_packages": fetched["missing"],
        "min_music_seconds": MIN_MUSIC_SECONDS,
        "music_folders": sorted(MUSIC_FOLDERS),
        "too_short": too_short,
        "undecodable": undecodable,
        "files": files,
    }
    with open(os.path.join(cache, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)
    log(f"{len(files)} music files listed in {os.path.join(cache, 'manifest.json')}")
    return manifest


def report(cache: str = DEFAULT_CACHE) -> str:
    """Hours of decodable music per package and format, and the sequenced files skipped."""
    with open(os.path.join(cache, "manifest.json")) as handle:
        manifest = json.load(handle)
    by_package: dict[str, list[float]] = {}
    by_format: dict[str, list[float]] = {}
    sequenced: dict[str, int] = {}
    for entry in manifest["files"]:
        if entry["decodable"]:
            by_package.setdefault(entry["package"], []).append(entry["duration"])
            by_format.setdefault(entry["format"], []).append(entry["duration"])
        else:
            sequenced[entry["format"]] = sequenced.get(entry["format"], 0) + 1
    lines = [f"{'package':<20} {'files':>6} {'hours':>7}"]
    for package in manifest["packages"]:
        durations = by_package.get(package, [])
        lines.append(f"{package:<20} {len(durations):>6} {sum(durations) / 3600:>7.2f}")
    total = [d for durations in by_package.values() for d in durations]
    lines.append(f"{'total':<20} {len(total):>6} {sum(total) / 3600:>7.2f}")
    lines.append(
        "formats (decodable): "
        + ", ".join(f"{name} {len(d)} files {sum(d) / 3600:.2f} h" for name, d in sorted(by_format.items()))
    )
    empty = [package for package in manifest["packages"] if package not in by_package]
    if empty:
        lines.append("packages without decodable music: " + ", ".join(empty))
    if sequenced:
        lines.append(
            "skipped, module/MIDI files that libsndfile cannot render: "
            + ", ".join(f"{name} {count}" for name, count in sorted(sequenced.items()))
        )
    lines.append(
        f"audio files under music folders of {MIN_MUSIC_SECONDS:.0f} s or less (left out): "
        f"{manifest['too_short']}; undecodable: {len(manifest['undecodable'])}"
    )
    if manifest["missing_packages"]:
        lines.append("missing packages: " + "; ".join(f"{k}: {v}" for k, v in manifest["missing_packages"].items()))
    else:
        lines.append(f"missing packages: none (all {len(manifest['packages'])} fetched)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qbsd_cli.training.corpus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("fetch", "download, extract and list the music (resumable)"),
        ("report", "hours of audio and formats of the listed music"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--cache", default=DEFAULT_CACHE, help="corpus folder (default %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        fetched = fetch(args.cache)
        build_manifest(args.cache)
        if fetched["missing"]:
            _log("missing: " + ", ".join(fetched["missing"]))
    else:
        print(report(args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
