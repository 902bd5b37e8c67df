"""What an index update tells its caller as it goes (light: the command line imports it
before anything heavy)."""

from __future__ import annotations


class Reporter:
    """What an update tells its caller as it goes; this base class says nothing.

    `start(total)` comes once the worker processes exist (a progress bar may start its
    thread then), followed by one `advance()` per analysed file and `finish()`. An index
    made before qbsd stored song names gets a second start/advance/finish round, one
    `advance()` per song whose tags are read (no analysis)."""

    def failure(self, path: str, reason: str) -> None:
        """A file failed in this run (a bad file, or a bad JSON line: `path` is its place)."""

    def start(self, total: int) -> None:
        """`total` files are about to be analysed."""

    def advance(self) -> None:
        """One more file is analysed."""

    def finish(self) -> None:
        """The analysis is over (normally or not)."""

    def rebuilding(self) -> None:
        """The search index (the Annoy forest) is being rebuilt, the update's last step."""
