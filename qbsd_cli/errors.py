"""The exceptions qbsd raises on purpose: one hierarchy under `QbsdError`.

Every message is one line meant for a user (it names the file or the index and says
what to do). The command line maps these to exit statuses in one place
(`cli.exit_status_for`); a Python program can catch `QbsdError` or a subclass.

    QbsdError
    ├── UsageError            a bad request: a query file that does not exist, a bad option value
    │   └── UnknownTagError   a word that names no tag (with `.suggestions`)
    ├── AudioError            a file that cannot be decoded or analysed
    │   └── TooShortError     too short for the model (under 1 s; 0.58 s for MFCC-patch models)
    ├── ModelError            a model file that is missing or is not a qbsd model
    ├── ClusterError          the Dask cluster of --cluster cannot be used (or the extra is missing)
    └── StoreError            the index cannot be used
        ├── IndexMissingError      there is no index (or no song in it) yet
        ├── IndexDamagedError      the database or the Annoy file is damaged
        ├── IndexBusyError         another process is writing to it
        └── ModelMismatchError     its vectors come from another model than the one in use
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """The command line's exit statuses, as documented in the README; `cli.exit_status_for`
    maps each error below to one of them."""

    OK = 0
    FAILED = 1  # some inputs failed (others may have succeeded), or the command could not run
    USAGE = 2  # bad arguments, unknown tag, unreadable query
    INTERRUPTED = 130  # Ctrl-C: what was finished is kept


class QbsdError(Exception):
    """Base of every error qbsd raises on purpose; str(error) is a one-line message."""


class UsageError(QbsdError):
    """The request itself is wrong (a missing query file, a vector of the wrong length)."""


class UnknownTagError(UsageError):
    """A word names no tag of the model; `suggestions` are the nearest tag names."""

    def __init__(self, word: str, suggestions: list[str]):
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else "; `qbsd tags` lists them all"
        super().__init__(f"unknown tag {word!r}{hint}")
        self.word = word
        self.suggestions = list(suggestions)


class AudioError(QbsdError):
    """A file cannot be read or decoded; the message is the reason, without the path."""


class TooShortError(AudioError):
    """The audio is too short for the model: under 1 s for both shipped models (their band
    windows and log-mel patches pad up to 3 s, but not from less), under one patch (0.58 s)
    for a model on the paper's MFCC patches."""


class ModelError(QbsdError):
    """The model file is missing or is not a qbsd model."""


class ClusterError(QbsdError):
    """The Dask cluster named by --cluster cannot be used: its scheduler is unreachable, it
    has no workers, its workers lack qbsd, or the cluster extra is not installed."""


class StoreError(QbsdError):
    """The index is missing, damaged or unusable; the message says what to do."""


class IndexMissingError(StoreError):
    """There is no index in the folder yet, or it holds no song."""


class IndexDamagedError(StoreError):
    """The index's database or Annoy file is damaged; rebuilding it helps."""


class IndexBusyError(StoreError):
    """Another process is writing to the index."""


class ModelMismatchError(StoreError):
    """Vectors of two different models met (an index and a query, or an index and a JSON line)."""


#: What to do about a mismatch, by where the other model is.
REINDEX_ADVICE = "use that model, or re-index with `qbsd index --rebuild DIR` to switch models"


def model_mismatch(
    what: str, found: str | None, index: str, expected: str | None, advice: str = REINDEX_ADVICE
) -> ModelMismatchError:
    """The one wording of a model mismatch: `what` (the model in use, a query vector, a
    JSON line, a Dask worker) is of model `found`, while `index` (the index, this qbsd)
    holds model `expected`; `advice` says what to do."""
    return ModelMismatchError(f"{what}: model {found}; {index} holds model {expected}: {advice}")
