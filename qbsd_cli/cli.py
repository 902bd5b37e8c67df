"""The `qbsd` command line: parse, call the library (`api`), format, map errors to exit
statuses (in `run`, the one place). Heavy modules (numpy, onnxruntime, the store) are
imported inside the commands so that `qbsd --help` stays instant."""

from __future__ import annotations

import contextvars
import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, List, Optional

import typer

from .display import shown, shown_path, shown_reason
from .errors import ExitStatus, QbsdError, UsageError
from .output import OutputFormat, error, json_line, note, stderr_is_terminal, write_line
from .playlist_files import is_playlist
from .reporting import Reporter
from .settings import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from .api import Index
    from .output import Progress
    from .results import Match

app = typer.Typer(
    name="qbsd",
    help="Find music by what it means: tag songs with moods and genres, index a library, "
    "find songs like songs (similar) or like words (search), or a path from one song to another (path).",
    no_args_is_help=True,
    # --install-completion for a quick start; completions/ has static scripts that never start Python
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: --debug (or $QBSD_DEBUG) for the command being run: tracebacks for errors, the workers'
#: stderr kept. One value per `run`, set by the top-level callback.
_DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("qbsd_debug", default=False)


def debugging() -> bool:
    """Whether the command being run shows tracebacks and the workers' stderr."""
    return _DEBUG.get() or bool(os.environ.get("QBSD_DEBUG"))


IndexOption = typer.Option(
    None,
    "--index",
    "-i",
    envvar="QBSD_INDEX",
    help="Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e. ~/.local/share/qbsd.",
    show_default=False,
)
FormatOption = typer.Option(
    OutputFormat.auto, "--format", "-f", help="Output format; auto is a table on a terminal, JSON lines when piped."
)
JobsOption = typer.Option(
    0, "--jobs", "-j", min=0, show_default=False, help="Files analysed in parallel; 0 (the default): all cores."
)
FullOption = typer.Option(
    False, "--full", help="Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file."
)
ModelOption = typer.Option(
    None,
    "--model",
    help="A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which "
    "is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index's own model, else fast.",
    show_default=False,
)
TimeoutOption = typer.Option(
    DEFAULT_TIMEOUT,
    "--timeout",
    min=0,
    metavar="SECONDS",
    help='Give up on a file after this long (it fails as "timed out"); 0: no limit.',
)
PerArtistOption = typer.Option(
    0, "--per-artist", min=0, metavar="N", help="At most N songs of one artist in the list; 0: no cap."
)
PerAlbumOption = typer.Option(
    0, "--per-album", min=0, metavar="N", help="At most N songs of one album in the list; 0: no cap."
)
KeepDuplicatesOption = typer.Option(
    False,
    "--keep-duplicates",
    help="Also list copies and re-encodes of one recording (same vector, or same artist and title).",
)
ExplainOption = typer.Option(False, "--explain", help='Give the three tags that most make each song match ("because").')

ClusterOption = typer.Option(
    None,
    "--cluster",
    metavar="ADDRESS",
    help="Analyse on the workers of this Dask scheduler (tcp://host:8786, else $QBSD_CLUSTER; needs the "
    "cluster extra, and the files at the same paths on every worker); --jobs is then ignored.",
    show_default=False,
)


class Interrupted(BaseException):
    """Ctrl-C; a BaseException of our own, so that click does not turn it into exit 1."""


class FailedInputs(Exception):
    """Some inputs failed (each already named on stderr): exit status 1, no further message."""


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    _DEBUG.set(debug)


def _index(folder: Optional[Path]) -> Index:
    from .api import Index

    return Index.open(folder)


def _stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    return [os.fsdecode(line) for line in data.splitlines() if line.strip()]


def _input_paths(files: Optional[List[str]]) -> list[str]:
    if not files or files == ["-"]:
        if sys.stdin.isatty():
            raise UsageError("no FILE given and nothing on stdin (give files, or pipe paths one per line)")
        return _stdin_lines()
    return list(files)


def _ranking_records(matches: list[Match], explain: bool = False) -> list[dict]:
    """The JSON records of a list: rank, path, score; artist, album, title and length
    (seconds) when known; because (with --explain)."""
    records = []
    for match in matches:
        record = {"rank": match.rank, "path": match.path, "score": round(match.score, 4)}
        for field in ("artist", "album", "title"):
            if getattr(match, field):
                record[field] = getattr(match, field)
        if match.length:
            record["length"] = round(match.length, 3)
        if explain:
            record["because"] = [
                {"tag": reason.tag, "score": round(reason.song, 4), "query": round(reason.query, 4)}
                for reason in match.because
            ]
        records.append(record)
    return records


@app.command()
def tag(
    files: Optional[List[str]] = typer.Argument(None, help="Audio files; '-' or none: paths on stdin, one per line."),
    top: int = typer.Option(10, "--top", "-k", min=0, help="Tags per file; 0 lists every tag."),
    vector: bool = typer.Option(False, "--vector", help='Add every score, in vocabulary order, as "vector".'),
    jobs: int = JobsOption,
    full: bool = FullOption,
    timeout: float = TimeoutOption,
    output_format: OutputFormat = FormatOption,
    model: Optional[Path] = ModelOption,
    cluster: Optional[str] = ClusterOption,
) -> None:
    """Tag audio files: one JSON line per file with its strongest tags."""
    from .api import Failure, tag_many
    from .output import Progress, resolve_format, table_console, tag_record_output

    paths = _input_paths(files)
    chosen = resolve_format(output_format)
    if chosen == OutputFormat.m3u:
        raise UsageError("--format m3u is for similar, search and path")
    console = table_console() if chosen == OutputFormat.table else None
    failed = 0
    with (
        tag_many(
            paths,
            model=model,
            jobs=jobs,
            full=full,
            timeout=timeout or None,
            keep_worker_stderr=debugging(),
            cluster=cluster,
        ) as results,
        Progress("tagging", len(paths)) as progress,
    ):
        for result in results:
            progress.advance()
            if isinstance(result, Failure):
                failed += 1
                error(result.path, result.reason)
                continue
            record = result.to_record(top, vector)
            tag_record_output(record, chosen, console)
    if failed:
        raise FailedInputs()


class _TerminalReporter(Reporter):
    """Reports an index update on stderr: one line per failure, a progress bar on a terminal."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def failure(self, path: str, reason: str) -> None:
        error(path, reason)

    def start(self, total: int) -> None:
        from .output import Progress

        self.progress = Progress("indexing", total).__enter__()

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance()

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None

    def rebuilding(self) -> None:
        if stderr_is_terminal():
            note("updating search index ...")


@app.command()
def index(
    folders: Optional[List[str]] = typer.Argument(None, help="Folders to scan recursively for audio."),
    from_jsonl: Optional[str] = typer.Option(
        None, "--from-jsonl", help="Ingest `qbsd tag --vector` output (a file or '-') instead of analysing."
    ),
    errors: bool = typer.Option(False, "--errors", help="List the files that failed, with their reasons, and stop."),
    duplicates: bool = typer.Option(
        False, "--duplicates", help="List the groups of files in the index that are one recording, and stop."
    ),
    rebuild: bool = typer.Option(False, "--rebuild", help="Start the index afresh (after a model change or damage)."),
    jobs: int = JobsOption,
    full: bool = FullOption,
    timeout: float = TimeoutOption,
    index_folder: Optional[Path] = IndexOption,
    model: Optional[Path] = ModelOption,
    cluster: Optional[str] = ClusterOption,
    output_format: OutputFormat = typer.Option(
        OutputFormat.auto,
        "--format",
        "-f",
        help="Output format of --errors and --duplicates; auto is plain lines on a terminal, JSON lines when piped.",
    ),
) -> None:
    """Index folders: analyse new or changed files, forget deleted ones, rebuild the search index."""
    from .output import resolve_format

    target = _index(index_folder)
    listing = resolve_format(output_format)
    if listing == OutputFormat.m3u and (errors or duplicates):
        raise UsageError("--format m3u is for similar, search and path")
    plain = listing == OutputFormat.table
    if errors:
        with target:
            for failure in target.failures():
                write_line(
                    f"{shown_path(failure.path)}: {shown_reason(failure.reason)}"
                    if plain
                    else json_line({"path": failure.path, "error": failure.reason})
                )
        return
    if duplicates:
        with target:
            for number, group in enumerate(target.duplicates(), 1):
                for record in _ranking_records(group):
                    record = {"group": number, **{k: v for k, v in record.items() if k != "rank"}}
                    write_line(
                        f"{number}\t{record['score']:.4f}\t{shown_path(record['path'])}" if plain else json_line(record)
                    )
        return
    if not folders and not from_jsonl:
        raise UsageError("give folders to index, or --from-jsonl FILE")
    folders = folders or []
    reporter = _TerminalReporter()
    if from_jsonl:
        # bytes: records.parse checks the UTF-8 of each line itself, so one bad line is one failure
        handle = sys.stdin.buffer if from_jsonl == "-" else _open_binary(from_jsonl)
        with handle:
            summary = target.ingest(
                handle, "stdin" if from_jsonl == "-" else from_jsonl, model=model, rebuild=rebuild, reporter=reporter
            )
    else:
        if stderr_is_terminal():
            note("scanning ...")
        summary = target.update(
            folders,
            model=model,
            jobs=jobs,
            full=full,
            timeout=timeout or None,
            rebuild=rebuild,
            reporter=reporter,
            keep_worker_stderr=debugging(),
            cluster=cluster,
        )
    note(
        f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, "
        f"failed {summary.failed}, unchanged {summary.unchanged}; "
        f"{summary.songs} songs in {shown_path(str(target.folder))}; {summary.seconds:.1f} s"
    )
    if summary.failed_now:
        raise FailedInputs()


def _open_binary(path: str) -> BinaryIO:
    """A JSON-lines file to ingest: a regular file only (a FIFO or a device would make
    `qbsd index` wait on it with the writer lock held)."""
    from .audio import regular_file

    try:
        regular_file(path)
        return open(path, "rb")
    except (OSError, QbsdError) as bad:
        raise UsageError(f"{shown_path(path)}: {getattr(bad, 'strerror', None) or bad}") from None


def _playlist_songs(argument: str) -> list[str]:
    """The songs of an m3u / m3u8 playlist given as query songs; each entry that is not a
    file here is named on stderr, and a playlist with none that is is a usage error."""
    from .playlist_files import read_m3u

    playlist = read_m3u(argument)
    for entry, reason in playlist.missing:
        error(entry, f"{reason} (in the playlist {shown_path(argument)}; left out)")
    if not playlist.songs:
        raise UsageError(f"{argument}: the playlist names no song that is a file here")
    return playlist.songs


class _StdinSongs:
    """The query songs of one command's arguments: files, and '-' for `qbsd tag --vector`
    JSON lines on stdin, which is read once. One '-' alone takes every line; several take
    a line each, in the order of the arguments (`path - -`, `similar - --not -`)."""

    def __init__(self, *argument_lists: Optional[List[str]]):
        self.dashes = sum(list(arguments or []).count("-") for arguments in argument_lists)
        self._records: list | None = None

    def _lines(self) -> list:
        if self._records is None:
            from .api import TagResult
            from .records import RecordError, read

            self._records = []
            for where, record in read(sys.stdin.buffer, "stdin", need_path=False):
                if isinstance(record, RecordError):
                    raise UsageError(f"{where}: {record}")
                self._records.append(TagResult.from_record(record))
            if not self._records:
                raise UsageError("stdin: no query (expected JSON lines from `qbsd tag --vector`)")
            if self.dashes > 1 and len(self._records) != self.dashes:
                raise UsageError(
                    f"stdin: {len(self._records)} JSON lines for {self.dashes} '-' arguments: each '-' takes one line"
                )
        return self._records

    def songs(self, arguments: Optional[List[str]]) -> list:
        songs = []
        for argument in arguments or []:
            if argument != "-" and is_playlist(argument):
                songs.extend(_playlist_songs(argument))
            elif argument != "-":
                songs.append(argument)
            elif self.dashes == 1:
                songs.extend(self._lines())
            else:
                songs.append(self._lines().pop(0))
        return songs


@app.command()
def similar(
    queries: List[str] = typer.Argument(
        ...,
        help="Audio files to start from (seeds), m3u/m3u8 playlists (their songs), or '-' for `qbsd tag "
        "--vector` JSON lines on stdin: a single '-' takes every line; with several (`- --not -`), each takes "
        "the next line.",
    ),
    avoid: Optional[List[str]] = typer.Option(
        None,
        "--not",
        help="A song (or an m3u playlist of songs) the list should move away from (repeatable); never listed.",
    ),
    tag_words: Optional[List[str]] = typer.Option(
        None, "--tag", help="A tag word to move towards, as search reads it: `calm`, `mood:calm` (repeatable)."
    ),
    top: int = typer.Option(10, "--top", "-k", min=1, help="How many songs."),
    per_artist: int = PerArtistOption,
    per_album: int = PerAlbumOption,
    keep_duplicates: bool = KeepDuplicatesOption,
    explain: bool = ExplainOption,
    include_self: bool = typer.Option(False, "--include-self", help="Keep the query songs in the results."),
    exact: bool = typer.Option(False, "--exact", help="Exact cosine search instead of the Annoy index."),
    full: bool = FullOption,
    output_format: OutputFormat = FormatOption,
    index_folder: Optional[Path] = IndexOption,
    model: Optional[Path] = ModelOption,
) -> None:
    """Songs in the index most like QUERIES together (cosine similarity of tag vectors)."""
    from .output import ranking_output, resolve_format

    stdin = _StdinSongs(queries, avoid)
    with _index(index_folder) as target:
        matches = target.similar(
            stdin.songs(queries),
            top,
            avoid=stdin.songs(avoid),
            tags=tag_words or [],
            per_artist=per_artist,
            per_album=per_album,
            keep_duplicates=keep_duplicates,
            explain=explain,
            include_self=include_self,
            exact=exact,
            model=model,
            full=full,
        )
    title = "like " + ", ".join(shown_path(query) for query in queries)
    ranking_output(_ranking_records(matches, explain), resolve_format(output_format), title, explain)


@app.command()
def search(
    words: List[str] = typer.Argument(..., help="Tags: `calm`, `mood:calm`, `pop/rock`, `easy listening`."),
    like: Optional[List[str]] = typer.Option(
        None, "--like", help="A song the list should also be like (repeatable): the same query as similar --tag."
    ),
    avoid: Optional[List[str]] = typer.Option(
        None,
        "--not",
        help="A song (or an m3u playlist of songs) the list should move away from (repeatable); never listed.",
    ),
    top: int = typer.Option(10, "--top", "-k", min=1, help="How many songs."),
    per_artist: int = PerArtistOption,
    per_album: int = PerAlbumOption,
    keep_duplicates: bool = KeepDuplicatesOption,
    explain: bool = ExplainOption,
    full: bool = FullOption,
    output_format: OutputFormat = FormatOption,
    index_folder: Optional[Path] = IndexOption,
    model: Optional[Path] = ModelOption,
) -> None:
    """Songs in the index that best fit WORDS (mean of their scores for those tags)."""
    from .output import ranking_output, resolve_format

    stdin = _StdinSongs(like, avoid)
    with _index(index_folder) as target:
        matches = target.search(
            words,
            top,
            like=stdin.songs(like),
            avoid=stdin.songs(avoid),
            per_artist=per_artist,
            per_album=per_album,
            keep_duplicates=keep_duplicates,
            explain=explain,
            model=model,
            full=full,
        )
    ranking_output(_ranking_records(matches, explain), resolve_format(output_format), " ".join(words), explain)


@app.command()
def path(
    start: str = typer.Argument(
        ...,
        help="The first song: an audio file, or '-' for a `qbsd tag --vector` line on stdin "
        "(`path - -`: each '-' takes the next line).",
    ),
    end: str = typer.Argument(..., help="The last song (a file or '-', as START)."),
    steps: int = typer.Option(12, "--steps", "-n", help="Songs in the playlist, START and END included."),
    per_artist: int = PerArtistOption,
    per_album: int = PerAlbumOption,
    keep_duplicates: bool = KeepDuplicatesOption,
    explain: bool = ExplainOption,
    full: bool = FullOption,
    output_format: OutputFormat = FormatOption,
    index_folder: Optional[Path] = IndexOption,
    model: Optional[Path] = ModelOption,
) -> None:
    """A playlist from START to END moving evenly between them, a song nearest each step."""
    from .output import ranking_output, resolve_format

    ends = _StdinSongs([start, end]).songs([start, end])
    if len(ends) != 2:
        raise UsageError(f"give two songs, START and END ({len(ends)} given, counting the lines on stdin)")
    with _index(index_folder) as target:
        matches = target.path(
            ends[0],
            ends[1],
            steps,
            per_artist=per_artist,
            per_album=per_album,
            keep_duplicates=keep_duplicates,
            explain=explain,
            model=model,
            full=full,
        )
    if len(matches) < steps:
        # with every song allowed a path is never short (api.path refuses too many steps)
        excluded = [] if keep_duplicates else ["duplicates of songs listed"]
        excluded += [
            f"over {option} {count}"
            for option, count in (("--per-artist", per_artist), ("--per-album", per_album))
            if count
        ]
        note(
            f"qbsd: the path has {len(matches)} songs, not --steps {steps}: the other songs are {' or '.join(excluded)}"
        )
    title = f"from {shown_path(start)} to {shown_path(end)}"
    ranking_output(_ranking_records(matches, explain), resolve_format(output_format), title, explain)


@app.command(name="map")
def map_command(
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write the page to this file instead of stdout.", show_default=False
    ),
    index_folder: Optional[Path] = IndexOption,
) -> None:
    """Draw the library as one HTML page: every song a point on the mood plane and on a map of its tags."""
    from .mappage import render
    from .output import write_page

    if output is None and sys.stdout.isatty():
        raise UsageError("qbsd map writes a web page: redirect it (qbsd map > library.html) or give --output FILE")
    with _index(index_folder) as target:
        page = render(target.map()).encode("utf-8")
    write_page(page, output)


@app.command()
def cluster(
    count: int = typer.Option(10, "--count", "-n", help="How many clusters (playlists)."),
    min_size: int = typer.Option(
        1, "--min-size", metavar="N", help="Dissolve clusters of fewer songs into their neighbours."
    ),
    max_size: int = typer.Option(
        0, "--max-size", metavar="N", help="List at most N songs per cluster, the most central; 0: all."
    ),
    per_artist: int = PerArtistOption,
    explain: bool = typer.Option(False, "--explain", help="Give how strongly each tag marks each cluster."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write one m3u playlist per cluster into this folder.", show_default=False
    ),
    output_format: OutputFormat = FormatOption,
    index_folder: Optional[Path] = IndexOption,
) -> None:
    """Group the library into playlists of songs that sound alike, each named by its tags."""
    from .output import cluster_output, m3u_lines, resolve_format

    chosen = resolve_format(output_format)
    if chosen == OutputFormat.m3u:
        raise UsageError("--format m3u is for similar, search and path; cluster writes m3u files with --output DIR")
    with _index(index_folder) as target:
        clusters = target.cluster(count, min_size=min_size, max_size=max_size, per_artist=per_artist)
    records = []
    for found in clusters:
        songs = []
        for path, score, info in found.songs:
            song = {"path": path, "score": round(score, 4)}
            for field in ("artist", "album", "title"):
                if info is not None and getattr(info, field):
                    song[field] = getattr(info, field)
            if info is not None and info.seconds:
                song["length"] = round(info.seconds, 3)
            songs.append(song)
        record: dict = {"cluster": found.number, "name": found.name, "size": found.size}
        record["tags"] = [mark.tag for mark in found.tags[:3]]
        if explain:
            record["because"] = [
                {"tag": m.tag, "cluster": round(m.cluster, 4), "library": round(m.library, 4), "lift": round(m.lift, 3)}
                for m in found.tags
            ]
        record["songs"] = songs
        records.append(record)
    if output is not None:
        from .clusters import safe_file_name

        try:
            output.mkdir(parents=True, exist_ok=True)
            for record in records:
                target_file = output / safe_file_name(record["name"], record["cluster"])
                target_file.write_text("\n".join(m3u_lines(record["songs"])) + "\n", encoding="utf-8")
        except OSError as problem:
            raise QbsdError(f"{shown_path(str(output))}: {problem.strerror or problem}") from None
        note(f"{len(records)} playlists in {shown_path(str(output))}")
    cluster_output(records, chosen, explain)


@app.command()
def tags(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the model id and tag count (on stderr)."),
    model: Optional[Path] = ModelOption,
) -> None:
    """The model's vocabulary, one tag per line."""
    from .model import ModelInfo

    info = ModelInfo.read(model)
    if verbose:
        note(f"model {shown(info.model_id)}, {len(info.tags)} tags, {shown_path(str(info.path))}")
        if info.description and stderr_is_terminal():  # prose for a person; scripts get the one line
            note(shown(info.description, 2000))
    for name in info.tags:  # a model file's metadata is text from a file like any other
        write_line(shown(name))


#: The import names of the train extra's packages (pyproject.toml)
TRAINING_EXTRA = ("torch", "onnx", "sklearn", "imblearn", "matplotlib")


def _training_installed() -> bool:
    # find_spec looks for the packages without importing them: --help stays instant
    return all(importlib.util.find_spec(name) is not None for name in TRAINING_EXTRA)


def train(
    data: Path = typer.Option(..., "--data", help="A 4Q folder, a CAL500 folder or a path,tags CSV."),
    layout: str = typer.Option("moods4q", "--layout", help="moods4q, cal500 or csv."),
    recipe: str = typer.Option(
        "cnn-tf-stats",
        "--recipe",
        help="Training recipe, ensemble or blend (see the model card): the shipped fast model is "
        "cnn-wide-corpus-view-student-bands with --int8-convolutions (needs the teachers' corpus), the accurate one "
        "musicnn-finetuned (or "
        "musicnn-heads, its teachers frozen; musicnn-midend-finetuned, the top of their mid-end tuned too); "
        "the default, "
        "cnn-tf-stats, needs neither.",
    ),
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write the ONNX model; if not given, models/qbsd.onnx, or models/qbsd-accurate.onnx for "
        "the musicnn-* recipes.",
        show_default=False,
    ),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", help="Train this many epochs on every song (no early stopping)."
    ),
    epochs_from_cv: Optional[Path] = typer.Option(
        None,
        "--epochs-from-cv",
        help="Train each recipe for its median best epoch in this `qbsd evaluate` results folder, on every song.",
    ),
    limit: int = typer.Option(0, "--limit", help="Use only the first N songs (smoke tests)."),
    cache: Optional[Path] = typer.Option(
        None, "--cache", help="Feature cache folder; if not given, ~/.cache/qbsd/frames."
    ),
    jobs: int = JobsOption,
    int8_convolutions: bool = typer.Option(
        False,
        "--int8-convolutions",
        help="Write the model with its convolutions in int8 (static, calibrated on the unlabelled corpus), "
        "as the shipped fast model; the float model is removed once quantised.",
    ),
) -> None:
    """Train the tag model on labelled audio and export it as ONNX (needs the train extra)."""
    from .settings import default_jobs
    from .training.commands import TrainingRequest, train_and_export

    train_and_export(
        TrainingRequest(
            data=data,
            recipe=recipe,
            layout=layout,
            output=output,
            epochs=epochs,
            limit=limit,
            cache=cache,
            jobs=jobs or default_jobs(),
            epochs_from_cv=epochs_from_cv,
            int8_convolutions=int8_convolutions,
        )
    )


def evaluate(
    data: Path = typer.Option(..., "--data", help="A 4Q folder, a CAL500 folder or a path,tags CSV."),
    layout: str = typer.Option("moods4q", "--layout", help="moods4q, cal500 or csv."),
    methods: str = typer.Option(
        "all",
        "--methods",
        help="Comma-separated baselines, recipes, ensembles and blends, and the query-by-example references "
        "mfcc-stats-cosine, musicnn-embedding-cosine, musicnn-mtt-embedding-cosine; all: every one "
        "(well over an hour on 2 cores the first time; finished folds are reused).",
    ),
    results: Path = typer.Option(
        Path("results"), "--results", help="Folder for the table, JSON, plots and per-fold scores."
    ),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature cache folder."),
    jobs: int = JobsOption,
) -> None:
    """Artist-grouped 5-fold cross-validation of baselines, CNN recipes and blends (resumable)."""
    from .settings import default_jobs
    from .training.commands import evaluate_methods

    evaluate_methods(data, layout, methods.split(","), results, cache, jobs or default_jobs())


def _missing_training_extra() -> None:
    missing = next(name for name in TRAINING_EXTRA if importlib.util.find_spec(name) is None)
    raise QbsdError(
        f"training needs the train extra ({missing} is missing): "
        f"pip install 'qbsd[train]'  (or pip install '.[train]' in a checkout)"
    )


def _register_training_commands() -> None:
    """`qbsd train` and `qbsd evaluate` where the train extra is installed; elsewhere hidden
    stand-ins that say how to install it."""
    if _training_installed():
        app.command()(train)
        app.command()(evaluate)
        return
    for name in ("train", "evaluate"):
        app.command(
            name,
            hidden=True,
            add_help_option=False,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        )(_missing_training_extra)


_register_training_commands()


def exit_status_for(problem: BaseException) -> ExitStatus:
    """The one mapping from what went wrong to the documented exit status."""
    if isinstance(problem, Interrupted):
        return ExitStatus.INTERRUPTED
    if isinstance(problem, UsageError):
        return ExitStatus.USAGE
    return ExitStatus.FAILED


def run(argv: list[str] | None = None) -> int:
    """Run `qbsd ARGV...` in this process and return its exit status; every error
    becomes one line on stderr (with --debug, a traceback too)."""
    reset = _DEBUG.set(False)  # an earlier run in this process (tests) must not leave --debug on
    try:
        app(args=argv, prog_name="qbsd")
    except SystemExit as finished:  # click's own ending: --help, a usage error, typer.Exit
        code = finished.code
        return code if isinstance(code, int) else (0 if code is None else ExitStatus.FAILED)
    except FailedInputs:
        return ExitStatus.FAILED
    except QbsdError as problem:
        if debugging():
            import traceback

            traceback.print_exc()
        error(None, str(problem))
        return exit_status_for(problem)
    except Interrupted as problem:
        sys.stderr.write("qbsd: interrupted; finished work is kept\n")
        return exit_status_for(problem)
    except Exception as unexpected:
        if debugging():
            raise
        sys.stderr.write(f"qbsd: error: {type(unexpected).__name__}: {unexpected} (run with --debug for details)\n")
        return ExitStatus.FAILED
    finally:
        _DEBUG.reset(reset)
    return ExitStatus.OK


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted()


def main() -> None:
    """Console entry point."""
    # numpy's OpenBLAS would start a thread per core in every process and keep them
    # spinning between calls. qbsd parallelises with processes (--jobs, one core each), so
    # each gets one BLAS thread: measured, this cut `qbsd tag`'s CPU time by ~40%
    # (benchmarks/). It must be set before numpy is imported; a value in the environment wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, _interrupt)
    sys.exit(run())
