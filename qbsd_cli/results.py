"""What the library hands back: a file's tags (TagResult), a file that failed (Failure),
one song of a list (Match). Plain frozen records; `api` makes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .fingerprint import to_text as fingerprint_text
from .ranking import Reason
from .songinfo import SongInfo

if TYPE_CHECKING:
    from .records import TagRecord


@dataclass(frozen=True)
class TagResult:
    """A file's tag vector: `vector` (n_tags,) float32 over the vocabulary `tags` of
    model `model_id`; `duration` is the number of seconds analysed. `info` holds the
    file's own artist, album, title (its tags, never its folders) and playing time."""

    path: str
    duration: float
    model_id: str
    tags: tuple[str, ...]
    vector: np.ndarray
    info: SongInfo = SongInfo()
    #: the audio fingerprint of the file's first 30 s (fingerprint.py), None when too short
    fingerprint: bytes | None = None

    def top(self, count: int = 10) -> list[tuple[str, float]]:
        """The `count` strongest (tag, score) pairs, best first (0: every tag)."""
        order = np.argsort(-self.vector, kind="stable")
        if count > 0:
            order = order[:count]
        return [(self.tags[i], float(self.vector[i])) for i in order]

    def to_record(self, top: int = 10, with_vector: bool = False) -> dict:
        """The JSON record `qbsd tag` prints (records.tag_record): path, duration, model;
        artist, album, title and length where the file's tags (header) give them, so that
        `qbsd index --from-jsonl` knows them too; tags (and vector, with the audio
        fingerprint in base64, for --from-jsonl's duplicate detection)."""
        from .records import tag_record

        names = {"artist": self.info.artist, "album": self.info.album, "title": self.info.title}
        return tag_record(
            self.path,
            self.duration,
            self.model_id,
            self.top(top),
            names,
            self.info.seconds,
            self.vector if with_vector else None,
            fingerprint_text(self.fingerprint) if with_vector and self.fingerprint else None,
        )

    @classmethod
    def from_record(cls, record: TagRecord) -> TagResult:
        """A checked `qbsd tag --vector` record (records.parse with need_vector) as a
        TagResult, e.g. to query with; its names count as the file's own tags."""
        from .songinfo import capped

        if record.vector is None:
            raise ValueError("a record without a vector is no TagResult")
        info = SongInfo(
            capped(record.artist),
            capped(record.album),
            capped(record.title),
            record.length,
            tagged=bool(record.artist and record.title),
        )
        return cls(record.path, record.duration, record.model or "", (), record.vector, info, record.fingerprint)


@dataclass(frozen=True)
class Failure:
    """A file that could not be analysed, with the one-line reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class Match:
    """One song of a list, `rank` from 1. `score` is the cosine similarity to the query
    (similar, and path: to the step's point), the mean of the named tags' scores (search),
    or, for songs and words together, the mean of both standardised (see ranking).
    `artist`, `album`, `title` are None when unknown, `length` the file's playing time in
    seconds; `because` holds the reasons when asked for (explain=True)."""

    rank: int
    path: str
    score: float
    artist: str | None = None
    album: str | None = None
    title: str | None = None
    length: float | None = None
    because: tuple[Reason, ...] = ()
