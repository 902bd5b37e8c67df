"""The `qbsd` command line. Heavy modules (numpy, onnxruntime, the store) are imported
inside the commands so that `qbsd --help` stays instant."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from .output import ExitStatus, OutputFormat

app = typer.Typer(
    name="qbsd",
    help="Find music by what it means: tag songs with moods and genres, index a library, "
         "find songs like a song (similar) or like words (search).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False

IndexOption = typer.Option(None, "--index", "-i", envvar="QBSD_INDEX",
                           help="Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e. ~/.local/share/qbsd.", show_default=False)
FormatOption = typer.Option(OutputFormat.auto, "--format", "-f",
                            help="Output format; auto is a table on a terminal, JSON lines when piped.")
JobsOption = typer.Option(0, "--jobs", "-j", min=0, show_default=False, help="Files analysed in parallel; 0 (the default): all cores.")
FullOption = typer.Option(False, "--full", help="Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file.")
ModelOption = typer.Option(None, "--model", envvar="QBSD_MODEL", help="ONNX model file; if not given, the shipped model.")
TimeoutOption = typer.Option(120.0, "--timeout", min=0, metavar="SECONDS",
                             help="Give up on a file after this long (it fails as \"timed out\"); 0: no limit.")


def default_index_folder() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "qbsd"


def _index_folder(index: Optional[Path]) -> Path:
    return Path(index) if index else default_index_folder()


def _max_segments(full: bool):
    from .model import DEFAULT_MAX_SEGMENTS

    return None if full else DEFAULT_MAX_SEGMENTS


def _jobs(jobs: int) -> int:
    from .analysis import default_jobs

    return jobs or default_jobs()


def _analysis_pool(tag_model, jobs: int, full: bool, timeout: float, n_files: int):
    """Worker processes for analysing `n_files` files (see analysis.AnalysisPool)."""
    from .analysis import AnalysisPool

    return AnalysisPool(str(tag_model.path), min(_jobs(jobs), n_files), _max_segments(full),
                        timeout or None, keep_stderr=_debug)


class Fatal(Exception):
    """Stops a command with one message and an exit status."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.FAILED):
        super().__init__(message)
        self.status = status


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")):
    global _debug
    _debug = debug or bool(os.environ.get("QBSD_DEBUG"))


def _load_model(model: Optional[Path]):
    from .model import ModelError, TagModel

    try:
        return TagModel(model)
    except ModelError as error:
        raise Fatal(str(error)) from None


def _open_store(index: Optional[Path], create: bool):
    from .store import IndexStore, StoreError

    try:
        return IndexStore(_index_folder(index), create=create)
    except StoreError as error:
        raise Fatal(str(error)) from None


def _open_index_for_query(index: Optional[Path]):
    """The index for similar/search; an index with no model bound yet (nothing indexed) is an error."""
    store = _open_store(index, create=False)
    if store.model_id is None or store.song_count() == 0:
        from .output import display_path

        raise Fatal(f"the index at {display_path(str(store.folder))} holds no songs yet: "
                    f"run `qbsd index DIR` first")
    return store


def _stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    return [os.fsdecode(line) for line in data.splitlines() if line.strip()]


def _input_paths(files: Optional[List[str]]) -> list[str]:
    if not files or files == ["-"]:
        if sys.stdin.isatty():
            raise Fatal("no FILE given and nothing on stdin (give files, or pipe paths one per line)",
                        ExitStatus.USAGE)
        return _stdin_lines()
    return list(files)


def _tag_record(path: str, duration: float, model_id: str, tags: list[str], vector, top: int,
                with_vector: bool) -> dict:
    import numpy as np

    order = np.argsort(-vector, kind="stable")
    if top > 0:
        order = order[:top]
    record = {"path": path, "duration": round(duration, 3), "model": model_id,
              "tags": [{"tag": tags[i], "score": round(float(vector[i]), 4)} for i in order]}
    if with_vector:
        record["vector"] = [round(float(v), 6) for v in vector]
    return record


@app.command()
def tag(
    files: Optional[List[str]] = typer.Argument(None, help="Audio files; '-' or none: paths on stdin, one per line."),
    top: int = typer.Option(10, "--top", "-k", min=0, help="Tags per file; 0 lists every tag."),
    vector: bool = typer.Option(False, "--vector", help="Add every score, in vocabulary order, as \"vector\"."),
    jobs: int = JobsOption,
    full: bool = FullOption,
    timeout: float = TimeoutOption,
    output_format: OutputFormat = FormatOption,
    model: Optional[Path] = ModelOption,
):
    """Tag audio files: one JSON line per file with its strongest tags."""
    from .output import Progress, display_path, error, resolve_format, table_console, tag_record_output

    paths = _input_paths(files)
    tag_model = _load_model(model)
    chosen = resolve_format(output_format)
    if chosen == OutputFormat.m3u:
        raise Fatal("--format m3u is for similar and search", ExitStatus.USAGE)
    console = None
    if chosen == OutputFormat.table:
        console = table_console()
    failed = 0
    if not paths:
        return
    # Workers are forked before the progress bar starts its thread.
    with _analysis_pool(tag_model, jobs, full, timeout, len(paths)) as pool, \
            Progress("tagging", len(paths)) as progress:
        for result in pool.analyse(paths):
            progress.advance()
            if result.error:
                failed += 1
                error(result.path, result.error)
                continue
            record = _tag_record(display_path(result.path), result.duration, tag_model.model_id,
                                 tag_model.tags, result.vector, top, vector)
            tag_record_output(record, chosen, console)
    if failed:
        raise typer.Exit(ExitStatus.FAILED)


def _failure_identity(info: os.stat_result) -> tuple[int, int]:
    """(size, time) recorded with a failure: a failed file is retried when either changes.
    The time is the later of the modification and status-change times, so that fixing a
    file's permissions (which changes only the latter) also gets it retried."""
    return info.st_size, max(info.st_mtime_ns, info.st_ctime_ns)


def _scan(folders: list[str]) -> tuple[dict[str, os.stat_result], dict[str, tuple[int, int, str]]]:
    """Audio files under `folders` (recursively; symlinked folders are not followed, so
    loops cannot trap the scan): path -> stat of the regular files, and path -> (size,
    time, reason) for audio-named entries that cannot be analysed (a directory, a FIFO,
    a broken link, a link loop, an unreadable folder). Nothing is opened here."""
    from .audio import is_audio_path, not_regular_reason, stat_reason

    found: dict[str, os.stat_result] = {}
    problems: dict[str, tuple[int, int, str]] = {}

    def problem(path: str, reason: str) -> None:
        try:
            size, when = _failure_identity(os.lstat(path))
        except OSError:
            size, when = 0, 0
        problems[path] = (size, when, reason)

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
            found[path] = info

    def unreadable(error: OSError) -> None:
        problem(error.filename, f"cannot read the folder: {error.strerror or error}")

    for folder in folders:
        folder = os.path.abspath(folder)
        if os.path.isfile(folder):
            visit(folder)
            continue
        if not os.path.isdir(folder):
            raise Fatal(f"{folder}: no such folder", ExitStatus.USAGE)
        for root, directories, names in os.walk(folder, onerror=unreadable):
            directories.sort()
            for name in directories:
                candidate = os.path.join(root, name)
                if is_audio_path(candidate) and not os.path.islink(candidate):
                    visit(candidate)
            for name in sorted(names):
                visit(os.path.join(root, name))
    return found, problems


@contextmanager
def _index_lock(folder: Path):
    """The index's writer lock (`flock` on FOLDER/lock, as IndexStore.writer_lock takes it),
    held for a whole `qbsd index` run, including --rebuild's deletions. The kernel drops
    it when the process dies, so it never goes stale."""
    import fcntl

    from .output import display_path
    from .store import LOCK_NAME

    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise Fatal(f"cannot open the index at {display_path(str(folder))}: "
                    f"{error.strerror or error}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Fatal(f"another `qbsd index` is running on the index at "
                        f"{display_path(str(folder))}; try again when it has finished") from None
        yield
    finally:
        os.close(descriptor)


def _delete_index_files(folder: Path) -> None:
    """--rebuild: remove the database (with its WAL files) and every Annoy file; not the lock."""
    from .store import ANNOY_PREFIX, DATABASE_NAME

    for name in os.listdir(folder):
        if name.startswith(DATABASE_NAME) or name.startswith(ANNOY_PREFIX):
            target = folder / name
            try:
                import shutil

                shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
            except FileNotFoundError:
                pass


@app.command()
def index(
    folders: Optional[List[str]] = typer.Argument(None, help="Folders to scan recursively for audio."),
    from_jsonl: Optional[str] = typer.Option(None, "--from-jsonl", help="Ingest `qbsd tag --vector` output (a file or '-') instead of analysing."),
    errors: bool = typer.Option(False, "--errors", help="List the files that failed, with their reasons, and stop."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Start the index afresh (after a model change or damage)."),
    jobs: int = JobsOption,
    full: bool = FullOption,
    timeout: float = TimeoutOption,
    index_folder: Optional[Path] = IndexOption,
    model: Optional[Path] = ModelOption,
):
    """Index folders: analyse new or changed files, forget deleted ones, rebuild the search index."""
    from .output import display_path, json_line, note, write_line

    folder = _index_folder(index_folder)
    if errors:
        store = _open_store(index_folder, create=False)
        for path, reason in _guarded_store(store.failures):
            write_line(json_line({"path": display_path(path), "error": reason}) if not sys.stdout.isatty()
                       else f"{display_path(path)}: {reason}")
        return
    if not folders and not from_jsonl:
        raise Fatal("give folders to index, or --from-jsonl FILE", ExitStatus.USAGE)
    if folders:
        for name in folders:
            if not os.path.isdir(name) and not os.path.isfile(name):
                raise Fatal(f"{os.path.abspath(name)}: no such folder", ExitStatus.USAGE)
    started = time.time()
    from .store import StoreError

    with _index_lock(folder):
        if rebuild:
            _delete_index_files(folder)
        store = _open_store(index_folder, create=True)
        try:
            if from_jsonl:
                counts = _ingest_jsonl(store, from_jsonl)
            else:
                counts = _index_folders(store, folders, model, jobs, full, timeout)
            note("updating search index ...") if sys.stderr.isatty() else None
            store.rebuild_annoy()
            songs = store.song_count()
        except StoreError as damaged:
            raise Fatal(str(damaged)) from None
        finally:
            store.close()
    note(f"added {counts['added']}, updated {counts['updated']}, removed {counts['removed']}, "
         f"failed {counts['failed']}, unchanged {counts['unchanged']}; "
         f"{songs} songs in {display_path(str(folder))}; {time.time() - started:.1f} s")
    if counts["failed_now"]:
        raise typer.Exit(ExitStatus.FAILED)


def _guarded_store(call, *args):
    """Call a store method, turning StoreError (a damaged index) into Fatal."""
    from .store import StoreError

    try:
        return call(*args)
    except StoreError as damaged:
        raise Fatal(str(damaged)) from None


#: Analysed files are committed at least this often (and every _BATCH_FILES files), so a
#: killed run loses at most this much work; SQLite commits in WAL mode cost about 1 ms.
_BATCH_SECONDS = 1.0
_BATCH_FILES = 16


def _index_folders(store, folders: list[str], model: Optional[Path], jobs: int, full: bool,
                   timeout: float) -> dict:
    from .output import Progress, error

    found, problems = _scan(folders)
    roots = [os.path.abspath(f) for f in folders]
    known = store.known_files()
    counts = dict(added=0, updated=0, removed=0, failed=0, unchanged=0, failed_now=0)

    def under_roots(path: str) -> bool:
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)

    gone = [path for path in known if under_roots(path) and path not in found and path not in problems]
    todo = []
    for path, info in found.items():
        previous = known.get(path)
        if previous and previous[2] == "ok" and previous[:2] == (info.st_size, info.st_mtime_ns):
            counts["unchanged"] += 1
        elif previous and previous[2] == "failed" and previous[:2] == _failure_identity(info):
            counts["failed"] += 1  # failed before and unchanged since: not retried
        else:
            todo.append((path, info, previous is not None and previous[2] == "ok"))
    new_problems = []
    for path, (size, when, reason) in problems.items():
        counts["failed"] += 1
        previous = known.get(path)
        if not (previous and previous[2] == "failed" and previous[:2] == (size, when)):
            new_problems.append((path, size, when, reason))

    # Check the model before writing anything: a refused run must leave the index as it was.
    tag_model = None
    if todo:
        tag_model = _load_model(model)
        store.bind_model(tag_model.model_id, tag_model.tags)

    with store.transaction():
        counts["removed"] = store.remove(gone) and len(gone)
        for path, size, when, reason in new_problems:
            counts["failed_now"] += 1
            error(path, reason)
            store.put_failure(path, size, when, reason)
    if not todo:
        return counts

    by_path = {path: (info, existed) for path, info, existed in todo}
    batch: list = []
    last_commit = time.monotonic()
    # Workers are forked before the progress bar starts its thread.
    with _analysis_pool(tag_model, jobs, full, timeout, len(todo)) as pool, \
            Progress("indexing", len(todo)) as progress:
        try:
            # Any order, and a None now and then while a slow file holds everything up,
            # so that finished files are committed within _BATCH_SECONDS.
            for result in pool.analyse(list(by_path), ordered=False, idle=_BATCH_SECONDS):
                if result is not None:
                    progress.advance()
                    info, existed = by_path[result.path]
                    batch.append((result, info, existed))
                if len(batch) >= _BATCH_FILES or time.monotonic() - last_commit >= _BATCH_SECONDS:
                    _store_batch(store, batch, counts)
                    batch = []
                    last_commit = time.monotonic()
        except (Interrupted, KeyboardInterrupt):
            _store_batch(store, batch, counts)  # Ctrl-C: what was analysed is kept
            raise
        _store_batch(store, batch, counts)
    return counts


def _store_batch(store, batch, counts) -> None:
    from .output import error

    if not batch:
        return
    with store.transaction():
        for result, info, existed in batch:
            if result.error:
                error(result.path, result.error)
                size, when = _failure_identity(info)
                store.put_failure(result.path, size, when, result.error)
                counts["failed"] += 1
                counts["failed_now"] += 1
            else:
                store.put_song(result.path, info.st_size, info.st_mtime_ns, result.duration, result.vector)
                counts["updated" if existed else "added"] += 1


def _read_json_lines(source: str):
    import json

    handle = sys.stdin if source == "-" else open(source, encoding="utf-8")
    try:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as bad:
                    yield number, bad
    finally:
        if handle is not sys.stdin:
            handle.close()


def _ingest_jsonl(store, source: str) -> dict:
    import numpy as np

    from .output import error
    from .store import ModelMismatchError

    counts = dict(added=0, updated=0, removed=0, failed=0, unchanged=0, failed_now=0)
    known = store.known_files()
    with store.transaction():
        for number, record in _read_json_lines(source):
            where = f"{source}:{number}" if source != "-" else f"stdin line {number}"
            if not isinstance(record, dict) or "vector" not in record or "path" not in record:
                error(where, "not a `qbsd tag --vector` record (needs path, model and vector)")
                counts["failed"] += 1
                counts["failed_now"] += 1
                continue
            model_id = record.get("model")
            if store.model_id is None:
                tags = _model_tags_for(model_id, len(record["vector"]))
                store.bind_model(model_id, tags)
            elif model_id != store.model_id:
                raise Fatal(str(ModelMismatchError(
                    f"{where}: vector from model {model_id}, but the index holds model {store.model_id}; "
                    f"re-index with --rebuild to switch models")))
            if len(record["vector"]) != store.n_tags:
                error(where, f"vector has {len(record['vector'])} values, the model has {store.n_tags} tags")
                counts["failed"] += 1
                counts["failed_now"] += 1
                continue
            path = os.path.abspath(record["path"])
            try:
                info = os.stat(path)
                size, mtime = info.st_size, info.st_mtime_ns
            except OSError:
                size, mtime = 0, 0
            store.put_song(path, size, mtime, float(record.get("duration", 0.0)),
                           np.asarray(record["vector"], dtype=np.float32))
            counts["updated" if path in known else "added"] += 1
    return counts


def _model_tags_for(model_id: Optional[str], n_tags: int) -> list[str]:
    """The vocabulary for vectors of `model_id`: the shipped (or $QBSD_MODEL) model's, if it is that model."""
    tag_model = _load_model(None)
    if tag_model.model_id != model_id:
        raise Fatal(f"vectors come from model {model_id}, but the model here is {tag_model.model_id}; "
                    f"tag them again with this model")
    return tag_model.tags


def _read_query_record() -> dict:
    import json

    for line in sys.stdin:
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise Fatal("stdin: not a JSON line from `qbsd tag --vector`", ExitStatus.USAGE) from None
            if not isinstance(record, dict) or "vector" not in record:
                raise Fatal("stdin: the JSON line has no \"vector\": use `qbsd tag --vector`", ExitStatus.USAGE)
            return record
    raise Fatal("stdin: no query (expected one JSON line from `qbsd tag --vector`)", ExitStatus.USAGE)


@app.command()
def similar(
    query: str = typer.Argument(..., help="An audio file, or '-' for one `qbsd tag --vector` JSON line on stdin."),
    top: int = typer.Option(10, "--top", "-k", min=1, help="How many songs."),
    include_self: bool = typer.Option(False, "--include-self", help="Keep the query song in the results."),
    exact: bool = typer.Option(False, "--exact", help="Exact cosine search instead of the Annoy index."),
    full: bool = FullOption,
    output_format: OutputFormat = FormatOption,
    index_folder: Optional[Path] = IndexOption,
    model: Optional[Path] = ModelOption,
):
    """Songs in the index most like QUERY (cosine similarity of tag vectors)."""
    import numpy as np

    from .output import display_path, ranking_output, resolve_format
    from .store import StoreError

    store = _open_index_for_query(index_folder)
    exclude = None
    if query == "-":
        record = _read_query_record()
        if record.get("model") != store.model_id:
            raise Fatal(f"the query vector comes from model {record.get('model')}, the index holds "
                        f"model {store.model_id}; tag the query with the same model, or re-index with --rebuild")
        vector = np.asarray(record["vector"], dtype=np.float32)
        if "path" in record:
            exclude = os.path.abspath(record["path"])
    else:
        if not os.path.exists(query):
            raise Fatal(f"{query}: no such file", ExitStatus.USAGE)
        exclude = os.path.abspath(query)
        info = os.stat(exclude)
        # one indexed lookup: reading every stored path cost 0.24 s at 100k songs
        vector = store.vector_for(exclude, info.st_size, info.st_mtime_ns)
        if vector is None:
            tag_model = _load_model(model)
            if tag_model.model_id != store.model_id:
                raise Fatal(f"the model here is {tag_model.model_id}, the index holds model "
                            f"{store.model_id}; re-index with `qbsd index --rebuild DIR`")
            from .audio import AudioError
            from .features import TooShortError

            try:
                vector = tag_model.analyse(query, _max_segments(full)).vector
            except (AudioError, TooShortError) as bad:
                raise Fatal(f"{display_path(query)}: {bad}") from None
    if len(vector) != store.n_tags:
        raise Fatal(f"query vector has {len(vector)} values, the index has {store.n_tags} tags", ExitStatus.USAGE)
    try:
        search = store.exact_nearest if exact else store.nearest
        found = search(vector, top, exclude=None if include_self else exclude)
    except StoreError as damaged:
        raise Fatal(str(damaged)) from None
    records = [{"rank": rank, "path": display_path(path), "score": round(score, 4)}
               for rank, (path, score) in enumerate(found, 1)]
    ranking_output(records, resolve_format(output_format), f"like {display_path(query)}")


def resolve_words(words: list[str], tags: list[str]) -> list[int]:
    """Tag columns named by `words`: `mood:calm`, or a bare name (`calm`) matching any
    category; consecutive words may form one name (`easy listening`). Unknown words
    raise Fatal with the nearest tags as suggestions."""
    import difflib

    by_full = {tag.lower(): i for i, tag in enumerate(tags)}
    by_name: dict[str, list[int]] = {}
    for i, tag in enumerate(tags):
        by_name.setdefault(tag.split(":", 1)[-1].lower(), []).append(i)
    columns: list[int] = []
    words = [w.strip().lower() for w in words if w.strip()]
    position = 0
    while position < len(words):
        for end in range(len(words), position, -1):  # longest run of words that names a tag
            phrase = " ".join(words[position:end])
            if phrase in by_full:
                columns.append(by_full[phrase])
                break
            if phrase in by_name:
                columns.extend(by_name[phrase])
                break
        else:
            word = words[position]
            names = sorted(set(by_full) | set(by_name))
            close = difflib.get_close_matches(word, names, n=5, cutoff=0.6)
            close += [name for name in names if word in name and name not in close][:5 - len(close)]
            hint = f"; did you mean: {', '.join(close)}?" if close else "; `qbsd tags` lists them all"
            raise Fatal(f"unknown tag {word!r}{hint}", ExitStatus.USAGE)
        position = end
    return sorted(set(columns))


@app.command()
def search(
    words: List[str] = typer.Argument(..., help="Tags: `calm`, `mood:calm`, `pop/rock`, `easy listening`."),
    top: int = typer.Option(10, "--top", "-k", min=1, help="How many songs."),
    output_format: OutputFormat = FormatOption,
    index_folder: Optional[Path] = IndexOption,
):
    """Songs in the index that best fit WORDS (mean of their scores for those tags)."""
    from .output import display_path, ranking_output, resolve_format

    store = _open_index_for_query(index_folder)
    columns = resolve_words(words, store.tags)
    records = [{"rank": rank, "path": display_path(path), "score": round(score, 4)}
               for rank, (path, score) in enumerate(store.rank_by_tags(columns, top), 1)]
    ranking_output(records, resolve_format(output_format), " ".join(words))


@app.command()
def tags(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the model id and tag count (on stderr)."),
    model: Optional[Path] = ModelOption,
):
    """The model's vocabulary, one tag per line."""
    import json

    from .model import ModelError, default_model_path, read_metadata
    from .output import note, write_line

    path = model or default_model_path()
    if not Path(path).exists():
        raise Fatal(f"model file not found: {path}")
    try:
        metadata = read_metadata(path)
        vocabulary = json.loads(metadata["qbsd.tags"])
    except (KeyError, ValueError, ModelError) as bad:
        raise Fatal(f"{path} is not a qbsd model ({bad})") from None
    except Exception as bad:
        raise Fatal(f"cannot read model {path}: {str(bad).splitlines()[0]}") from None
    if verbose:
        note(f"model {metadata['qbsd.model_id']}, {len(vocabulary)} tags, {path}")
    for name in vocabulary:
        write_line(name)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="A 4Q folder, a CAL500 folder or a path,tags CSV."),
    layout: str = typer.Option("moods4q", "--layout", help="moods4q, cal500 or csv."),
    recipe: str = typer.Option("cnn-tf-stats", "--recipe", help="Training recipe, ensemble or blend (see the model card; the default is the shipped one)."),
    output: Path = typer.Option(Path("models/qbsd.onnx"), "--output", "-o", help="Where to write the ONNX model."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Train this many epochs on every song (no early stopping)."),
    epochs_from_cv: Optional[Path] = typer.Option(None, "--epochs-from-cv", help="Train each recipe for its median best epoch in this `qbsd evaluate` results folder, on every song."),
    limit: int = typer.Option(0, "--limit", help="Use only the first N songs (smoke tests)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature cache folder; if not given, ~/.cache/qbsd/frames."),
    jobs: int = JobsOption,
):
    """Train the tag model on labelled audio and export it as ONNX (needs the train extra)."""
    from .train_command import train_and_export

    train_and_export(data, layout, recipe, output, epochs, limit, cache, _jobs(jobs), epochs_from_cv)


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="A 4Q folder, a CAL500 folder or a path,tags CSV."),
    layout: str = typer.Option("moods4q", "--layout", help="moods4q, cal500 or csv."),
    methods: str = typer.Option("all", "--methods",
                                help="Comma-separated baselines, recipes, ensembles and blends; all: every one "
                                     "(well over an hour on 2 cores the first time; finished folds are reused)."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder for the table, JSON, plots and per-fold scores."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature cache folder."),
    jobs: int = JobsOption,
):
    """Artist-grouped 5-fold cross-validation of baselines, CNN recipes and blends (resumable)."""
    from .train_command import evaluate_methods

    evaluate_methods(data, layout, methods.split(","), results, cache, _jobs(jobs))


class Interrupted(BaseException):
    """Ctrl-C; a BaseException of our own, so that click does not turn it into exit 1."""


def _interrupt(signum, frame):
    raise Interrupted()


def main() -> None:
    """Console entry point: maps errors and Ctrl-C to one line and an exit status."""
    import signal

    signal.signal(signal.SIGINT, _interrupt)
    try:
        app()
    except Fatal as fatal:
        from .output import error

        if _debug:
            import traceback

            traceback.print_exc()
        error(None, str(fatal))
        sys.exit(fatal.status)
    except Interrupted:
        sys.stderr.write("qbsd: interrupted; finished work is kept\n")
        sys.exit(ExitStatus.INTERRUPTED)
    except Exception as unexpected:
        if _debug:
            raise
        from .store import StoreError

        if isinstance(unexpected, StoreError):  # a damaged or busy index: the message says what to do
            from .output import error

            error(None, str(unexpected))
            sys.exit(ExitStatus.FAILED)
        sys.stderr.write(f"qbsd: error: {type(unexpected).__name__}: {unexpected} (run with --debug for details)\n")
        sys.exit(ExitStatus.FAILED)
