"""Writing results: JSON lines when piped, a rich table on a terminal, or an M3U playlist.

Messages and progress go to stderr so that stdout carries only results.
"""

from __future__ import annotations

import enum
import json
import os
import sys


class ExitStatus(enum.IntEnum):
    """Process exit codes, as documented in the README."""

    OK = 0
    FAILED = 1  # some inputs failed (others may have succeeded), or the command could not run
    USAGE = 2  # bad arguments, unknown tag, unreadable query
    INTERRUPTED = 130  # Ctrl-C: what was finished is kept


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


def display_path(path: str) -> str:
    """A path as text that can always be printed (undecodable bytes shown as escapes)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


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
    """One line on stderr: `qbsd: PATH: reason`."""
    prefix = f"qbsd: {display_path(path)}: " if path else "qbsd: "
    sys.stderr.write(prefix + reason + "\n")
    sys.stderr.flush()


def note(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def table_console(content_width: int = 0):
    """A console for tables on stdout.

    On a terminal, rich folds long cells to the terminal's width. Redirected to a file or
    a pipe there is no width to respect, and rich's default of 80 columns would cut paths
    in two, so the console is made as wide as the content needs.
    """
    from rich.console import Console

    if stdout_is_terminal():
        return Console()
    return Console(width=max(80, content_width))


def stderr_console():
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

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def advance(self, amount: int = 1) -> None:
        if self.bar:
            self.bar.advance(self.task, amount)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _m3u_name(record: dict) -> str:
    """`Artist - Title`, or the title, or the file's name."""
    title = record.get("title") or os.path.basename(display_path(record["path"]))
    return f"{record['artist']} - {title}" if record.get("artist") else title


def _because_text(record: dict) -> str:
    return ", ".join(f"{entry['tag'].split(':', 1)[-1]} {entry['score']:.2f}" for entry in record.get("because", []))


def ranking_output(records: list[dict], output_format: OutputFormat, title: str, explain: bool = False) -> None:
    """`similar` / `search` / `path` results: {"rank", "path", "score", ...} records (see
    cli._ranking_records)."""
    if output_format == OutputFormat.json:
        for record in records:
            write_line(json_line(record))
    elif output_format == OutputFormat.m3u:
        write_line("#EXTM3U")
        for record in records:
            if not record["path"]:  # a path end given as a JSON line without a path: nothing to play
                continue
            seconds = round(record["length"]) if record.get("length") else -1
            # a line break in a tag would end the #EXTINF line early
            write_line(f"#EXTINF:{seconds},{' '.join(_m3u_name(record).split())}")
            write_line(display_path(record["path"]))
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title)
        table.add_column("#", justify="right")
        table.add_column("score", justify="right")
        table.add_column("artist", overflow="fold")
        table.add_column("album", overflow="fold")
        table.add_column("title", overflow="fold")
        table.add_column("path", overflow="fold")
        if explain:
            table.add_column("because", overflow="fold")
        paths = [display_path(record["path"]) for record in records]
        for record, path in zip(records, paths):
            # Text, not a plain string: a file called "[live] x.mp3" is not rich markup
            cells = [Text(record.get(field, "")) for field in ("artist", "album", "title")] + [Text(path)]
            if explain:
                cells.append(Text(_because_text(record)))
            table.add_row(str(record["rank"]), f"{record['score']:.3f}", *cells)
        longest = max((len(path) for path in paths), default=0)
        extra = max(
            (sum(len(record.get(field, "")) for field in ("artist", "album", "title")) for record in records), default=0
        )
        if explain:
            extra += max((len(_because_text(record)) for record in records), default=0)
        # room for the rank and score columns, the column headers and rich's borders and padding
        table_console(content_width=longest + extra + 20 + 5 * len(table.columns)).print(table)


def tag_record_output(record: dict, output_format: OutputFormat, console=None) -> None:
    """One `qbsd tag` result."""
    if output_format == OutputFormat.table:
        from rich.markup import escape
        from rich.table import Table

        # the path on a line of its own: as a table title it would wrap to the table's width
        console.print(
            f"[bold]{escape(display_path(record['path']))}[/bold]  ({record['duration']:.1f} s analysed)",
            soft_wrap=True,
        )
        table = Table()
        table.add_column("tag")
        table.add_column("score", justify="right")
        for entry in record["tags"]:
            table.add_row(entry["tag"], f"{entry['score']:.3f}")
        console.print(table)
    else:
        write_line(json_line(record))
