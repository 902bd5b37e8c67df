"""Writing results: JSON lines when piped, a rich table on a terminal, or an M3U playlist.

Messages and progress go to stderr so that stdout carries only results.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .display import FIELD_LIMIT, has_unsafe, markup_safe, one_line, shown, shown_path, shown_reason
from .errors import ExitStatus, QbsdError
from .records import dumps

if TYPE_CHECKING:
    from rich.console import Console


class OutputFormat(enum.StrEnum):
    auto = "auto"
    json = "json"
    table = "table"
    m3u = "m3u"


def stdout_is_terminal() -> bool:
    """Results go to a person (tables) rather than a program (JSON lines)."""
    return sys.stdout.isatty()


def stderr_is_terminal() -> bool:
    """Progress bars and progress notes are shown (they would only clutter a log file)."""
    return sys.stderr.isatty()


def resolve_format(requested: OutputFormat) -> OutputFormat:
    if requested != OutputFormat.auto:
        return requested
    return OutputFormat.table if stdout_is_terminal() else OutputFormat.json


def json_line(record: dict) -> str:
    """One JSON line (records.dumps: the stored values, escaped where a terminal would act)."""
    return dumps(record)


def write_line(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (head, a closed pipe) is gone: stop quietly, as Unix filters do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(ExitStatus.OK) from None


def error(path: str | None, reason: str) -> None:
    """One line on stderr: `qbsd: PATH: reason`, both made safe to show (display)."""
    prefix = f"qbsd: {shown_path(path)}: " if path else "qbsd: "
    sys.stderr.write(prefix + shown_reason(reason) + "\n")
    sys.stderr.flush()


def note(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def table_console(content_width: int = 0) -> Console:
    """A console for tables on stdout.

    On a terminal, rich folds long cells to the terminal's width. Redirected to a file or
    a pipe there is no width to respect, and rich's default of 80 columns would cut paths
    in two, so the console is made as wide as the content needs.
    """
    from rich.console import Console

    if stdout_is_terminal():
        return Console()
    return Console(width=max(80, content_width))


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


class Progress:
    """A progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, description: str, total: int | None):
        self.bar = None
        if stderr_is_terminal() and total:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=stderr_console(),
                transient=True,
            )
            self.task = self.bar.add_task(description, total=total)

    def __enter__(self) -> Progress:
        if self.bar:
            self.bar.start()
        return self

    def advance(self, amount: int = 1) -> None:
        if self.bar:
            self.bar.advance(self.task, amount)

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()


def _m3u_name(record: dict) -> str:
    """`Artist - Title`, or the title, or the file's name: one safe line of text."""
    title = record.get("title") or os.path.basename(record["path"])
    name = f"{one_line(record['artist'])} - {one_line(title)}" if record.get("artist") else one_line(title)
    # a comma would not break the line, but a player reading the name after the first comma
    # is not misled by it either; line breaks and controls are gone (one_line)
    return one_line(name, 2 * FIELD_LIMIT + 3)


def m3u_location(path: str) -> str:
    """The line of an m3u playlist that names `path`: the path itself, or, where it
    cannot be written as one safe line (a line break, a control character or an
    undecodable byte in the name, or a leading `#` or space that players would misread),
    a `file://` URI with the path's bytes percent-encoded, which players resolve to the same
    file."""
    if has_unsafe(path) or path[:1] in ("#", " ") or path != path.strip() or not os.path.isabs(path):
        return "file://" + quote(os.fsencode(os.path.abspath(path)), safe="/")
    return path


def _because_text(record: dict) -> str:
    return ", ".join(f"{entry['tag'].split(':', 1)[-1]} {entry['score']:.2f}" for entry in record.get("because", []))


def write_page(page: bytes, path: Path | None) -> None:
    """A whole document (`qbsd map`'s page) to the file `path`, or to stdout when None; a
    reader that went away is a quiet end, as for write_line."""
    if path is not None:
        try:
            path.write_bytes(page)
        except OSError as problem:
            raise QbsdError(f"{shown_path(str(path))}: {problem.strerror or problem}") from None
        return
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(page)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(ExitStatus.OK) from None


def m3u_lines(records: list[dict]) -> list[str]:
    """An m3u playlist of `{"path", "artist", "title", "length", ...}` records: `#EXTM3U`,
    then per song `#EXTINF:seconds,Artist - Title` and its location (m3u_location)."""
    lines = ["#EXTM3U"]
    for record in records:
        if not record["path"]:  # a path end given as a JSON line without a path: nothing to play
            continue
        seconds = round(record["length"]) if record.get("length") else -1
        lines.append(f"#EXTINF:{seconds},{_m3u_name(record)}")
        lines.append(m3u_location(record["path"]))
    return lines


def cluster_output(clusters: list[dict], output_format: OutputFormat, explain: bool = False) -> None:
    """`qbsd cluster` results: one JSON line per cluster, or a table (size, name, the first
    songs, and with --explain the tags that mark it)."""
    if output_format == OutputFormat.json:
        for cluster in clusters:
            write_line(json_line(cluster))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(clusters)} clusters")
    table.add_column("#", justify="right")
    table.add_column("songs", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("first songs", overflow="fold")
    if explain:
        table.add_column("marked by (lift)", overflow="fold")
    for cluster in clusters:
        first = "; ".join(shown(song.get("title") or os.path.basename(song["path"])) for song in cluster["songs"][:3])
        cells = [Text(shown(cluster["name"])), Text(first)]
        if explain:
            marks = ", ".join(f"{shown(m['tag'].split(':', 1)[-1])} {m['lift']:+.1f}" for m in cluster["because"])
            cells.append(Text(marks))
        table.add_row(str(cluster["cluster"]), str(cluster["size"]), *cells)
    table_console(content_width=160).print(table)


def ranking_output(records: list[dict], output_format: OutputFormat, title: str, explain: bool = False) -> None:
    """`similar` / `search` / `path` results: {"rank", "path", "score", ...} records (see
    cli._ranking_records)."""
    if output_format == OutputFormat.json:
        for record in records:
            write_line(json_line(record))
    elif output_format == OutputFormat.m3u:
        for line in m3u_lines(records):
            write_line(line)
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(shown(title, 2 * FIELD_LIMIT)))
        table.add_column("#", justify="right")
        table.add_column("score", justify="right")
        table.add_column("artist", overflow="fold")
        table.add_column("album", overflow="fold")
        table.add_column("title", overflow="fold")
        table.add_column("path", overflow="fold")
        if explain:
            table.add_column("because", overflow="fold")
        paths = [shown_path(record["path"]) for record in records]
        rows = []
        for record, path in zip(records, paths):
            # Text, not a plain string: a file called "[live] x.mp3" is not rich markup
            fields = [shown(record.get(field, "")) for field in ("artist", "album", "title")]
            if explain:
                fields.append(shown(_because_text(record), 2 * FIELD_LIMIT))
            rows.append(fields)
            cells = [Text(field) for field in fields[:3]] + [Text(path)] + [Text(field) for field in fields[3:]]
            table.add_row(str(record["rank"]), f"{record['score']:.3f}", *cells)
        longest = max((len(path) for path in paths), default=0)
        extra = max((sum(len(field) for field in fields) for fields in rows), default=0)
        # room for the rank and score columns, the column headers and rich's borders and padding
        table_console(content_width=longest + extra + 20 + 5 * len(table.columns)).print(table)


def tag_record_output(record: dict, output_format: OutputFormat, console: Console | None = None) -> None:
    """One `qbsd tag` result."""
    if output_format == OutputFormat.table:
        from rich.table import Table
        from rich.text import Text

        assert console is not None, "a table needs the console (table_console)"
        # the path on a line of its own: as a table title it would wrap to the table's width
        console.print(
            f"[bold]{markup_safe(shown_path(record['path']))}[/bold]  ({record['duration']:.1f} s analysed)",
            soft_wrap=True,
        )
        table = Table()
        table.add_column("tag")
        table.add_column("score", justify="right")
        for entry in record["tags"]:
            table.add_row(Text(shown(entry["tag"])), f"{entry['score']:.3f}")
        console.print(table)
    else:
        write_line(json_line(record))
