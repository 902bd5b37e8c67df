"""qbsd: find music by what it means (musical query by semantic description, Qin et al.).

The library under the `qbsd` command line; see `qbsd_cli.api` for a tour:

    import qbsd_cli as qbsd

    qbsd.tag("song.mp3").top(5)                       # [("mood:calm", 0.61), ...]
    with qbsd.Index.open() as index:
        index.update(["/music"])
        index.similar("song.mp3", top=10)             # [Match(rank, path, score, artist, ...), ...]
        index.path("a.mp3", "b.mp3", steps=12)        # a playlist from one song to another
        index.search("calm jazz", top=10)

Importing the package has no side effects and loads nothing heavy: the names below are
imported from their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "tag": "api",
    "tag_many": "api",
    "Index": "api",
    "TagResult": "api",
    "Failure": "api",
    "Match": "api",
    "Reason": "api",
    "IndexSummary": "indexing",
    "Reporter": "indexing",
    "QbsdError": "errors",
    "UsageError": "errors",
    "UnknownTagError": "errors",
    "AudioError": "errors",
    "TooShortError": "errors",
    "ModelError": "errors",
    "StoreError": "errors",
    "IndexMissingError": "errors",
    "IndexDamagedError": "errors",
    "IndexBusyError": "errors",
    "ModelMismatchError": "errors",
}
__all__ = [
    "AudioError",
    "Failure",
    "Index",
    "IndexBusyError",
    "IndexDamagedError",
    "IndexMissingError",
    "IndexSummary",
    "Match",
    "ModelError",
    "ModelMismatchError",
    "QbsdError",
    "Reason",
    "Reporter",
    "StoreError",
    "TagResult",
    "TooShortError",
    "UnknownTagError",
    "UsageError",
    "tag",
    "tag_many",
]

if TYPE_CHECKING:
    from .api import Failure, Index, Match, Reason, TagResult, tag, tag_many
    from .errors import (
        AudioError,
        IndexBusyError,
        IndexDamagedError,
        IndexMissingError,
        ModelError,
        ModelMismatchError,
        QbsdError,
        StoreError,
        TooShortError,
        UnknownTagError,
        UsageError,
    )
    from .indexing import IndexSummary, Reporter


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
