"""Ranking: how songs are scored, chosen and ordered for every list qbsd gives.

The one home of retrieval (`similar`, `search`, `path` and duplicates all combine what is
here; `api.Index` only resolves the query songs and hands over the store):

- unit rows (`unit`, `unit_rows`: scaled to length 1, a zero vector stays zero), so that a
  product is a cosine;
- the query (`Query`: the direction of seeds and counter-examples, the named tags, how
  they combine) and the reasons a song matched (`reasons`);
- the selection rules (`Selection`: no song twice, no duplicate of one listed or barred,
  at most N per artist or album) and the duplicate rule itself (`same_recording`,
  `duplicate_groups`);
- ordering (`top`, `ranked_order`: by score, equal scores by path) and picking (`pick`);
- candidates, exact (every song scored chunk by chunk, `pick_scanned`) or approximate
  (the Annoy forest's nearest, over-fetched while the rules drop too many), and the lists
  made of them (`best`, the greedy `walk` of `path`).

Pure numpy over what a `SongSource` (the index store) hands over; it writes nothing.
Vectors are float32 tag vectors of shape (n_tags,) (values in 0..1).

How a query is weighed (also in the README):

- examples: each seed counts equally (its vector scaled to length 1); each counter-example
  (`--not`) pulls the other way with half a seed's weight (AVOID_WEIGHT), the Rocchio
  rule; a song's score is its cosine to that direction.
- words: a song's score is the mean of its scores for the named tags, as `search` gives.
- examples and words together: the two scores are standardised over the whole index
  (minus the mean, over the standard deviation) and averaged, so words and examples weigh
  the same whatever the spread of either; the score printed is that mean, in standard
  deviations above the index's average song.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import fingerprint
from .settings import DEFAULT_DUPLICATE_COSINE
from .songinfo import SongInfo

#: A counter-example's pull, against 1 for a seed.
AVOID_WEIGHT = 0.5
#: Reasons given per song by --explain.
REASONS = 3

#: Two songs are one recording at or above their model's duplicate cosine (each model's
#: metadata, measured by benchmarks/duplicates.py: model.duplicate_threshold) or, below
#: it, when they are candidates whose audio fingerprints agree.
#: Below the threshold, two songs whose vectors have at least this cosine (or whose files'
#: tags give the same artist and title, with lengths that agree) are candidates: their audio
#: fingerprints (fingerprint.py) are compared, and they are one recording if those agree.
#: Tags alone never make a duplicate: whole packages carry one artist and title on every
#: track. Measured by `python benchmarks/fingerprint.py` (benchmarks/DUPLICATES.md), fast
#: model: re-encodes (MP3 64 kbit/s, Ogg, FLAC, 44.1 kHz, 300 ms of silence added or cut)
#: keep a cosine of 0.967 or more, and 2.0% of the pairs of different clips reach 0.9 (each
#: candidate costs a comparison of about 0.1 ms); 24 kbit/s MP3s fall to 0.65, and are
#: candidates by cosine only about half the time (35 of 60), always when tagged alike.
CANDIDATE_COSINE = 0.9


@dataclass(frozen=True)
class Reason:
    """One of the tags that most make a song match: its score in the song and in the query
    (1.0 for a named tag), both in 0..1."""

    tag: str
    song: float
    query: float


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """`matrix` (shape (n, d)) with every row scaled to length 1, so that a product is a
    cosine. The one rule for a zero vector: it has no direction and stays zero (similarity
    0 to everything beats NaN)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def unit(vector: np.ndarray) -> np.ndarray:
    """`vector` (shape (d,)) scaled to length 1 (unit_rows' rule: a zero vector stays zero)."""
    return unit_rows(np.asarray(vector)[None, :])[0]


def top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest of `scores` (shape (n,)), best first."""
    if count <= 0 or len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    if count >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, count - 1)[:count]
    return part[np.argsort(-scores[part], kind="stable")]


def _standardised(scores: np.ndarray) -> np.ndarray:
    spread = float(scores.std())
    return (scores - scores.mean()) / (spread if spread > 0 else 1.0)


class Query:
    """Seeds, counter-examples and tag columns, and how they score songs.

    `seeds` and `avoid` are lists of vectors (n_tags,); `tag_columns` indices into the
    vocabulary. At least one of the three is non-empty."""

    def __init__(self, seeds: Sequence[np.ndarray], avoid: Sequence[np.ndarray], tag_columns: Sequence[int]):
        self.tag_columns = sorted(set(int(column) for column in tag_columns))
        self.has_examples = bool(seeds or avoid)
        n_tags = len((list(seeds) + list(avoid))[0]) if self.has_examples else None
        direction = np.zeros(n_tags or 0, dtype=np.float64)
        profile = np.zeros(n_tags or 0, dtype=np.float64)
        if seeds:
            direction += np.mean([unit(np.asarray(seed, np.float64)) for seed in seeds], axis=0)
            profile += np.mean(np.asarray(seeds, np.float64), axis=0)
        if avoid:
            direction -= AVOID_WEIGHT * np.mean([unit(np.asarray(other, np.float64)) for other in avoid], axis=0)
            profile -= AVOID_WEIGHT * np.mean(np.asarray(avoid, np.float64), axis=0)
        #: the direction songs are scored against, unit length (zero when seeds and
        #: counter-examples cancel out)
        self.direction = unit(direction)
        self._example_profile = np.clip(profile, 0.0, None)

    @property
    def needs_every_song(self) -> bool:
        """Examples and words together are standardised over the whole index."""
        return self.has_examples and bool(self.tag_columns)

    def scores(self, vectors: np.ndarray, unit_rows: np.ndarray) -> np.ndarray:
        """Each song's score (see the module's docstring), shape (n,), for songs `vectors`
        (n, n_tags) and the same at unit length; for examples and words together these must
        be every song of the index."""
        return self.combine(self.parts(vectors, unit_rows))

    def parts(self, vectors: np.ndarray, unit_rows: np.ndarray) -> np.ndarray:
        """What scores combines, row by row, so that songs can be scored in chunks:
        shape (n, 2), the cosine to the direction (0 without examples) and the mean of
        the named tags (0 without words)."""
        out = np.zeros((len(vectors), 2), dtype=np.float64)
        if self.tag_columns:
            out[:, 1] = vectors[:, self.tag_columns].mean(axis=1)
        if self.has_examples:
            out[:, 0] = unit_rows.astype(np.float64) @ self.direction
        return out

    def combine(self, parts: np.ndarray) -> np.ndarray:
        """The scores (n,) from parts (n, 2) of every song (standardised over them when
        examples and words are both given)."""
        if not self.has_examples:
            return parts[:, 1].copy()
        if not self.tag_columns:
            return parts[:, 0].copy()
        return (_standardised(parts[:, 0]) + _standardised(parts[:, 1])) / 2.0

    def profile(self, n_tags: int) -> np.ndarray:
        """What the query asks of each tag, shape (n_tags,), in 0..1, for reasons: the
        seeds' mean vector less the counter-examples' pull, and 1 for each named tag."""
        profile = self._example_profile.copy() if self.has_examples else np.zeros(n_tags)
        profile[self.tag_columns] = 1.0
        return profile


def reasons(profile: np.ndarray, vector: np.ndarray, tags: Sequence[str], count: int = REASONS) -> tuple[Reason, ...]:
    """The `count` tags with the largest product of the query's `profile` and the song's
    `vector` (both (n_tags,)): the tags strong in both. Ties go to the earlier tag."""
    strength = profile * vector
    order = np.argsort(-strength, kind="stable")
    return tuple(Reason(tags[i], float(vector[i]), float(profile[i])) for i in order[:count] if strength[i] > 0)


#: Artists that rippers and taggers write when they know none: two songs "by" one of these
#: are not thereby candidates for one recording.
PLACEHOLDER_ARTISTS = frozenset(
    {"", "unknown", "unknown artist", "artist", "various", "various artists", "va", "none", "n/a"}
)
#: Titles of the same kind: "Track 01", "track1", "Audio Track 3", "Untitled", "Unknown title".
#: A bare number ("1999", "22") is a title of its own.
PLACEHOLDER_TITLE = re.compile(r"(?:(?:audio )?track|piste|title|untitled|unknown(?: title)?)[\s_#.-]*\d*|")
#: Two tagged songs of one artist and title are candidates for one recording (their audio
#: fingerprints are compared) only if their lengths (when both are known) differ by at most
#: this many seconds: a live take or a remix is longer.
SAME_LENGTH_SECONDS = 2.0


def _same_recording_key(info: SongInfo | None) -> tuple[str, str] | None:
    """(artist, title) as compared for "the same artist and title", or None where those do
    not name a recording: not from the file's tags, or placeholder names."""
    if info is None or not info.tagged or not info.artist or not info.title:
        return None
    artist, title = info.artist.casefold().strip(" <>[]()"), info.title.casefold().strip(" <>[]()")
    if artist in PLACEHOLDER_ARTISTS or PLACEHOLDER_TITLE.fullmatch(title):
        return None
    return artist, title


def _same_length(seconds: float | None, other: float | None) -> bool:
    return seconds is None or other is None or abs(seconds - other) <= SAME_LENGTH_SECONDS


def _fingerprint(info: SongInfo | None) -> bytes | None:
    return info.fingerprint if info is not None else None


def same_name(info: SongInfo | None, other: SongInfo | None) -> bool:
    """Whether the files' own tags give the same artist and title (not placeholders) and
    their lengths agree: evidence to look at the audio, never a duplicate by itself."""
    if info is None or other is None:
        return False
    key = _same_recording_key(info)
    return key is not None and key == _same_recording_key(other) and _same_length(info.seconds, other.seconds)


def same_recording(cosine: float, threshold: float, info: SongInfo | None, other: SongInfo | None) -> bool:
    """The duplicate rule: two songs are one recording only if their audio says so, the
    cosine of their vectors at least `threshold`, or, for candidates (a cosine of at least
    CANDIDATE_COSINE, or the same tagged artist and title with lengths that agree), their
    audio fingerprints agree (fingerprint.agree). Tags alone never decide; a song without a
    fingerprint (an index made before them) is judged by the threshold alone."""
    if cosine >= threshold:
        return True
    if cosine < CANDIDATE_COSINE and not same_name(info, other):
        return False
    return fingerprint.agree(_fingerprint(info), _fingerprint(other))


class Selection:
    """The songs a list holds so far, and whether another may join: not a path already
    there or barred, not a duplicate of one (`same_recording`: a cosine at least `threshold`
    with its unit vector, or audio fingerprints that agree for a candidate pair) unless
    keep_duplicates, and at most `per_artist` (`per_album`) songs of one artist (album; 0:
    no cap). Songs of unknown artist (album) are not capped."""

    def __init__(self, threshold: float, per_artist: int = 0, per_album: int = 0, keep_duplicates: bool = False):
        self.threshold = threshold
        self.per_artist = per_artist
        self.per_album = per_album
        self.keep_duplicates = keep_duplicates
        self._paths: set[str] = set()
        self._units: list[np.ndarray] = []
        self._unit_matrix: np.ndarray | None = None  # _units stacked
        self._infos: list[SongInfo | None] = []  # beside _units
        self._recordings: dict[tuple[str, str], list[int]] = {}  # -> indices into _units
        self._artists: dict[str, int] = {}
        self._albums: dict[tuple[str, str], int] = {}

    @staticmethod
    def _artist(info: SongInfo | None) -> str | None:
        return info.artist.casefold() if info and info.artist else None

    @staticmethod
    def _album(info: SongInfo | None) -> tuple[str, str] | None:
        # "Greatest Hits" of two artists are two albums
        return ((info.artist or "").casefold(), info.album.casefold()) if info and info.album else None

    def is_duplicate(self, unit_vector: np.ndarray, info: SongInfo | None) -> bool:
        """Whether a song is the same recording as one held or barred (`same_recording`)."""
        if not self._units:
            return False
        if self._unit_matrix is None or len(self._unit_matrix) != len(self._units):
            # stacked once per song held, not once per candidate (a list that drops many
            # candidates would otherwise copy every held vector per candidate)
            self._unit_matrix = np.asarray(self._units)
        cosines = self._unit_matrix @ unit_vector
        if float(np.max(cosines)) >= self.threshold:
            return True
        if _fingerprint(info) is None:
            return False
        candidates = set(np.nonzero(cosines >= CANDIDATE_COSINE)[0].tolist())
        key = _same_recording_key(info)
        if key is not None:
            candidates.update(self._recordings.get(key, ()))
        return any(same_recording(float(cosines[i]), self.threshold, info, self._infos[i]) for i in sorted(candidates))

    def admits(self, path: str, unit_vector: np.ndarray, info: SongInfo | None) -> bool:
        if path in self._paths:
            return False
        if not self.keep_duplicates and self.is_duplicate(unit_vector, info):
            return False
        artist, album = self._artist(info), self._album(info)
        if self.per_artist and artist is not None and self._artists.get(artist, 0) >= self.per_artist:
            return False
        return not (self.per_album and album is not None and self._albums.get(album, 0) >= self.per_album)

    def bar(self, path: str | None, unit_vector: np.ndarray, info: SongInfo | None) -> None:
        """Keep a song (a seed, a counter-example) and its duplicates out of the list."""
        if path:
            self._paths.add(path)
        if not self.keep_duplicates:
            key = _same_recording_key(info)
            if key is not None:
                self._recordings.setdefault(key, []).append(len(self._units))
            self._units.append(unit_vector)
            self._infos.append(info)

    def add(self, path: str, unit_vector: np.ndarray, info: SongInfo | None) -> None:
        """Put a song in the list (counted against its artist's and album's caps)."""
        self.bar(path, unit_vector, info)
        artist, album = self._artist(info), self._album(info)
        if artist is not None:
            self._artists[artist] = self._artists.get(artist, 0) + 1
        if album is not None:
            self._albums[album] = self._albums.get(album, 0) + 1


def ranked_order(scores: np.ndarray, first: int = 64) -> Iterator[int]:
    """Indices into `scores` (shape (n,)) by score, highest first, equal scores by index:
    the same query on the same index always gives the same list. Callers hand over songs
    in path (byte) order, as the store's catalogue is, so that ties go by path.

    Lazy, because a list is cut short long before the end: the best `first` (and every
    song tied with the last of them) are sorted and given, then 8 times as many of the
    rest, and so on; each round partitions what is left (O(n)) rather than sorting it all."""
    scores = np.asarray(scores, dtype=np.float64)
    remaining = np.arange(len(scores))
    wanted = first
    while remaining.size:
        if wanted < remaining.size:
            left = scores[remaining]
            cut = np.partition(left, left.size - wanted)[left.size - wanted]
            best = left >= cut  # ties with the cut are all taken now, so none depends on the partition
            chunk, remaining = remaining[best], remaining[~best]
        else:
            chunk, remaining = remaining, remaining[:0]
        yield from chunk[np.lexsort((chunk, -scores[chunk]))].tolist()
        wanted *= 8


def pick(
    order: Iterable[int],
    paths: Sequence[str],
    unit_rows: np.ndarray,
    infos: Sequence[SongInfo | None],
    selection: Selection,
    count: int,
) -> list[int]:
    """The first `count` of `order` (indices into paths) that `selection` admits, each
    added to it as it is taken."""
    taken: list[int] = []
    for i in order:
        if len(taken) >= count:
            break
        if selection.admits(paths[i], unit_rows[i], infos[i]):
            selection.add(paths[i], unit_rows[i], infos[i])
            taken.append(i)
    return taken


def path_points(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """`steps` unit directions evenly between two vectors, shape (steps, n_tags): step i
    is the point i/(steps-1) of the way from start to end (both first scaled to length 1,
    so that a loud-tagged song does not pull the path towards itself), scaled back to
    length 1, since songs are compared by cosine."""
    fractions = np.linspace(0.0, 1.0, steps)[:, None]
    mixed = (1.0 - fractions) * unit(np.asarray(start, np.float64)) + fractions * unit(np.asarray(end, np.float64))
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return mixed / norms


#: Fingerprint comparisons per song at most, in duplicate_groups: its nearest candidates
#: by cosine (and as many of the songs tagged with its name). A recording rarely has more
#: copies than this in one library; a library where many songs are candidates of one
#: another (a package of one artist and title on every track) then costs n x this many
#: comparisons (about 0.1 ms each), not n squared.
CANDIDATES_PER_SONG = 10


def _keep_nearest(
    best_cosine: np.ndarray, best_index: np.ndarray, rows: np.ndarray, columns: np.ndarray, cosines: np.ndarray
) -> None:
    """Fold candidate pairs (rows[k], columns[k]) of cosine cosines[k] into each row's
    CANDIDATES_PER_SONG best (in place); ties go to the earlier column."""
    order = np.lexsort((columns, -cosines, rows))  # by row, then best first, ties by column
    rows, columns, cosines = rows[order], columns[order], cosines[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)]):
        row = int(rows[start])
        merged_cosine = np.concatenate([best_cosine[row], cosines[start:end]])
        merged_index = np.concatenate([best_index[row], columns[start:end]])
        keep = np.lexsort((merged_index, -merged_cosine))[: best_cosine.shape[1]]
        best_cosine[row], best_index[row] = merged_cosine[keep], merged_index[keep]


def duplicate_groups(
    paths: Sequence[str], unit_rows: np.ndarray, infos: Sequence[SongInfo | None], threshold: float, block: int = 1024
) -> list[list[tuple[int, float]]]:
    """Groups of songs that are one recording (`same_recording`: cosine at least
    `threshold`, or audio fingerprints that agree for a candidate pair, and so on
    transitively): per group, (index into paths, cosine to the group's first song) sorted by
    path, groups by their first path.

    Exact, so its cost grows with the square of the index: every pair is compared once,
    n²/2 · n_tags multiply-adds, in tiles of `block` x `block` songs on and above the
    diagonal, so that memory stays at one tile (block² float32, 4 MB at 1024) besides
    the vectors themselves. Fingerprints (about 0.1 ms a pair) are compared only for
    candidate pairs not yet in one group, and for each song only with its
    CANDIDATES_PER_SONG nearest candidates by cosine (and as many of the songs tagged with
    its name), so that they cost at most n · CANDIDATES_PER_SONG comparisons, not n²."""
    parent = list(range(len(paths)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    def join_if_audio_agrees(i: int, j: int) -> None:
        if root(i) != root(j) and fingerprint.agree(_fingerprint(infos[i]), _fingerprint(infos[j])):
            join(i, j)

    rows = np.asarray(unit_rows, dtype=np.float32)
    printed = np.array([_fingerprint(info) is not None for info in infos], dtype=bool)
    # each song's CANDIDATES_PER_SONG nearest later candidates (cosine, index into paths)
    best_cosine = np.full((len(paths), CANDIDATES_PER_SONG), -np.inf, dtype=np.float32)
    best_index = np.full((len(paths), CANDIDATES_PER_SONG), -1, dtype=np.int64)
    for start in range(0, len(paths), block):
        tile_rows = rows[start : start + block]
        for other in range(start, len(paths), block):
            cosines = tile_rows @ rows[other : other + block].T
            near_i, near_j = np.nonzero(cosines >= min(threshold, CANDIDATE_COSINE))
            values = cosines[near_i, near_j]
            near_i, near_j = near_i + start, near_j + other
            above = near_j > near_i  # each pair once, and not a song with itself
            near_i, near_j, values = near_i[above], near_j[above], values[above]
            same = values >= threshold
            for i, j in zip(near_i[same].tolist(), near_j[same].tolist()):
                join(i, j)
            candidate = ~same & printed[near_i] & printed[near_j]
            if candidate.any():
                _keep_nearest(best_cosine, best_index, near_i[candidate], near_j[candidate], values[candidate])
    for i in range(len(paths)):
        for j in best_index[i][np.argsort(-best_cosine[i], kind="stable")].tolist():
            if j >= 0:
                join_if_audio_agrees(i, j)
    by_recording: dict[tuple[str, str], list[int]] = {}
    for i, info in enumerate(infos):
        key = _same_recording_key(info) if printed[i] else None
        if key is None or info is None:
            continue
        same_name_songs = by_recording.setdefault(key, [])
        held = [
            j
            for j in same_name_songs
            if (held_info := infos[j]) is not None and _same_length(info.seconds, held_info.seconds)
        ]
        if len(held) > CANDIDATES_PER_SONG:  # a whole package tagged alike: its nearest only
            order = np.argsort(-(rows[held] @ rows[i]), kind="stable")[:CANDIDATES_PER_SONG]
            held = [held[k] for k in sorted(order.tolist())]
        for j in held:
            join_if_audio_agrees(i, j)
        same_name_songs.append(i)
    members: dict[int, list[int]] = {}
    for i in range(len(paths)):
        members.setdefault(root(i), []).append(i)

    groups = []
    for group in members.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda i: os.fsencode(paths[i]))
        first = rows[group[0]]
        groups.append([(i, float(rows[i] @ first)) for i in group])
    groups.sort(key=lambda group: os.fsencode(paths[group[0][0]]))
    return groups


# --------------------------------------------------------------------------- lists from an index


class SongSource(Protocol):
    """What ranking reads of an index (store.IndexStore gives it): songs by scan, by rowid
    and by path, the forest's nearest, the whole catalogue. Paths sort by their bytes."""

    @property
    def n_tags(self) -> int | None: ...

    @property
    def tags(self) -> list[str] | None: ...

    def scan(self, score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...

    def songs_by_rowid(self, rowids: np.ndarray) -> dict[int, tuple[str, np.ndarray, SongInfo | None]]: ...

    def songs_for(self, paths: list[str]) -> dict[str, tuple[np.ndarray, SongInfo | None]]: ...

    def nearest(self, vector: np.ndarray, count: int, exclude: str | None = None) -> list[tuple[str, float]]: ...

    def catalogue(self) -> tuple[list[str], np.ndarray, np.ndarray, list[SongInfo | None]]: ...


@dataclass(frozen=True)
class Seed:
    """A query song: its vector (n_tags,), its absolute path (None: a vector without a
    file) and what it is called (None when unknown)."""

    vector: np.ndarray
    path: str | None = None
    info: SongInfo | None = None


@dataclass(frozen=True)
class ListRules:
    """Which songs a list may hold and how it is made: `count` songs, at most `per_artist`
    (`per_album`) of one artist (album; 0: no cap), duplicates of listed or barred songs
    left out unless `keep_duplicates` (two songs are one recording at a cosine of
    `threshold`, see same_recording), the seeds left out unless `include_self`; `explain`
    fills the reasons; `exact` scores every song instead of asking the forest."""

    count: int
    threshold: float = DEFAULT_DUPLICATE_COSINE
    per_artist: int = 0
    per_album: int = 0
    keep_duplicates: bool = False
    explain: bool = False
    exact: bool = False
    include_self: bool = False

    def selection(self) -> Selection:
        return Selection(self.threshold, self.per_artist, self.per_album, self.keep_duplicates)


@dataclass(frozen=True)
class Ranked:
    """One song of a list: path, score, vector (n_tags,), names, reasons (with explain)."""

    path: str
    score: float
    vector: np.ndarray | None  # None where the list has no use for it (duplicates)
    info: SongInfo | None
    because: tuple[Reason, ...] = ()


#: (path, vector, SongInfo) of songs read by rowid index, kept between calls of pick_scanned
SongsRead = tuple[dict[int, str], dict[int, np.ndarray], dict[int, SongInfo | None]]


def pick_scanned(
    source: SongSource,
    order: Iterable[int],
    rowids: np.ndarray,
    selection: Selection,
    count: int,
    read: SongsRead | None = None,
) -> tuple[SongsRead, list[int]]:
    """`pick` over songs known by rowid (SongSource.scan): their paths, vectors and names
    are read in batches of the best remaining, as `order` (indices into rowids) gives them,
    until `count` are taken. Returns (what was read: path, vector and SongInfo per index,
    the indices taken); `read`, from an earlier call, is added to and spares reading those
    songs again."""
    paths, vectors, infos = read if read is not None else ({}, {}, {})
    taken: list[int] = []
    order = iter(order)
    batch_size = 2 * count + 16
    while len(taken) < count:
        batch = [i for _, i in zip(range(batch_size), order)]
        if not batch:
            break
        unread = [i for i in batch if i not in paths]
        songs = source.songs_by_rowid(rowids[unread]) if unread else {}
        for i in unread:
            if int(rowids[i]) in songs:  # songs deleted meanwhile are skipped
                paths[i], vectors[i], infos[i] = songs[int(rowids[i])]
        batch = [i for i in batch if i in paths]
        if not batch:
            continue
        units = unit_rows(np.stack([vectors[i] for i in batch]))
        batch_taken = pick(
            range(len(batch)),
            [paths[i] for i in batch],
            units,
            [infos[i] for i in batch],
            selection,
            count - len(taken),
        )
        taken += [batch[j] for j in batch_taken]
        batch_size *= 4
    return (paths, vectors, infos), taken


def _exact_best(
    source: SongSource, query: Query, selection: Selection, count: int
) -> list[tuple[str, float, np.ndarray, SongInfo | None]]:
    """Every song scored, chunk by chunk (numpy only); the vectors and names read back
    only for the songs the list considers, best first."""
    rowids, parts = source.scan(query.parts)
    scores = query.combine(parts)
    (paths, vectors, infos), taken = pick_scanned(source, ranked_order(scores), rowids, selection, count)
    return [(paths[i], float(scores[i]), vectors[i], infos[i]) for i in taken]


def _approximate_best(
    source: SongSource, query: Query, make_selection: Callable[[], Selection], count: int, barred: int
) -> list[tuple[str, float, np.ndarray, SongInfo | None]]:
    """The forest's candidates (SongSource.nearest), ranked by their exact cosine; more of
    them while the rules (duplicates, caps, the `barred` seeds themselves) leave too few."""
    wanted = 2 * count + barred
    while True:
        found = [path for path, _score in source.nearest(query.direction.astype(np.float32), wanted)]
        stored = source.songs_for(found)
        # in byte order, as the catalogue is, so that ranked_order breaks ties by path
        paths = sorted((path for path in found if path in stored), key=os.fsencode)
        matrix = np.stack([stored[path][0] for path in paths]) if paths else np.zeros((0, source.n_tags or 0))
        units = unit_rows(matrix)
        infos = [stored[path][1] for path in paths]
        scores = query.scores(matrix, units)
        taken = pick(ranked_order(scores), paths, units, infos, make_selection(), count)
        if len(taken) >= count or len(found) < wanted:
            return [(paths[i], float(scores[i]), matrix[i], infos[i]) for i in taken]
        wanted *= 4


def best(
    source: SongSource, query: Query, seeds: Sequence[Seed], avoided: Sequence[Seed], rules: ListRules
) -> list[Ranked]:
    """The `rules.count` best songs for `query` that the rules admit, seeds and counter-
    examples barred (with their duplicates; the seeds kept with include_self), ranked by
    exact score, ties by path: exactly over every song when asked, when words and examples
    are combined (standardised over the whole index) or when there is no direction to ask
    the forest for; else from the forest's candidates."""

    def fresh_selection() -> Selection:
        selection = rules.selection()
        for seed in [*avoided, *([] if rules.include_self else seeds)]:
            selection.bar(seed.path, unit(seed.vector), seed.info)
        return selection

    if rules.exact or query.needs_every_song or not query.has_examples or not np.any(query.direction):
        chosen = _exact_best(source, query, fresh_selection(), rules.count)
    else:
        chosen = _approximate_best(source, query, fresh_selection, rules.count, len(seeds) + len(avoided))
    profile = query.profile(source.n_tags or 0) if rules.explain else None
    tags = source.tags or []
    return [
        Ranked(path, score, vector, info, reasons(profile, vector, tags) if profile is not None else ())
        for path, score, vector, info in chosen
    ]


def walk(source: SongSource, start: Seed, end: Seed, steps: int, rules: ListRules) -> list[Ranked]:
    """A path of `steps` songs from `start` to `end` (both included, first and last): step
    i is the song nearest by cosine to the point i/(steps-1) of the way between their
    directions (path_points), chosen greedily in order, never a song twice nor a duplicate
    of one listed (unless keep_duplicates), within the caps. Every song's cosine to every
    point is computed chunk by chunk (numpy only); path, vector and names are read only for
    the songs a step considers. Each song's score is its cosine to its step's point; fewer
    songs come back only when duplicates and caps leave too few."""
    a, b = start.vector, end.vector
    points = path_points(a, b, steps)
    selection = rules.selection()
    selection.add(start.path or "", unit(a), start.info)
    selection.add(end.path or "", unit(b), end.info)
    inner = points[1:-1]
    rowids, cosines = source.scan(lambda _vectors, units: units.astype(np.float64) @ inner.T)
    read: SongsRead = ({}, {}, {})
    middle = []
    for step in range(inner.shape[0]):
        read, taken = pick_scanned(source, ranked_order(cosines[:, step]), rowids, selection, 1, read)
        middle += [(step, i, float(cosines[i, step])) for i in taken]
    paths, matrix, infos = read
    fractions = np.linspace(0.0, 1.0, steps)
    tags = source.tags or []

    def because(step: int, vector: np.ndarray) -> tuple[Reason, ...]:
        if not rules.explain:
            return ()
        return reasons((1.0 - fractions[step]) * a + fractions[step] * b, vector, tags)

    songs = [(0, start.path or "", a, start.info, float(unit(a) @ points[0]))]
    songs += [(step + 1, paths[i], matrix[i], infos[i], cosine) for step, i, cosine in middle]
    songs += [(steps - 1, end.path or "", b, end.info, float(unit(b) @ points[-1]))]
    return [Ranked(path, score, vector, info, because(step, vector)) for step, path, vector, info, score in songs]


def duplicates(source: SongSource, threshold: float) -> list[list[tuple[str, float, SongInfo | None]]]:
    """The groups of songs of the whole index that are one recording (duplicate_groups):
    (path, cosine to the group's first song, SongInfo) per song, sorted by path."""
    paths, _matrix, units, infos = source.catalogue()
    groups = duplicate_groups(paths, units, infos, threshold)
    return [[(paths[i], score, infos[i]) for i, score in group] for group in groups]
