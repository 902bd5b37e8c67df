"""The forest's records in the database: which generation is committed (a ForestState in
`meta`), which song each of its items is (`annoy_items`), and which songs it does not
describe any more. forest.py handles the files themselves.

A build takes a generation number (take_generation), reads one snapshot of the songs
(songs_for_build), writes its file and commits it (commit_forest) unless a newer build
committed meanwhile. A search reads the committed state (forest_state) and, in the same
snapshot, the songs written since (fresh_songs) and the items still live (live_items).
"""

from __future__ import annotations

import json

import numpy as np

from .connection import guarded
from .forest import ForestState
from .layout import damaged
from .songs import SongDatabase


class ForestRecords(SongDatabase):
    """The songs database of one index folder with the records of its forest."""

    @guarded
    def take_generation(self) -> int:
        """A forest generation number no other build has or will have."""
        with self._write():
            generation = int(self._required_meta("annoy_next_generation"))
            self._set_meta("annoy_next_generation", str(generation + 1))
        return generation

    @guarded
    def songs_for_build(self) -> tuple[int, list[bytes], np.ndarray]:
        """One snapshot of every song for a forest build: (the song revision, path bytes
        sorted, vectors float32 (n, n_tags) in the same order)."""
        with self.snapshot():
            rev = int(self._required_meta("song_rev"))
            rows = self._sql.execute("SELECT path, vector FROM songs ORDER BY path").fetchall()
            matrix = self._vectors_from_rows(rows)
        return rev, [row[0] for row in rows], matrix

    @guarded
    def commit_forest(self, generation: int, state: ForestState | None, keys: list[bytes]) -> bool:
        """Make `state` the committed forest (None: no forest, as there were no songs), its
        item i being the song with path bytes keys[i]. Returns False and changes nothing when
        a newer generation was committed meanwhile, since this one is of an older snapshot."""
        with self._write():
            if int(self._meta("annoy_generation") or 0) > generation:
                return False
            self._sql.execute("DELETE FROM annoy_items")
            if state is not None:
                self._sql.executemany("INSERT INTO annoy_items (item, path) VALUES (?, ?)", enumerate(keys))
            record = (
                {"size": state.size, "crc32": state.crc32, "rev": state.rev, "trees": state.trees, "count": state.count}
                if state
                else None
            )
            self._set_meta("annoy_file", state.file if state else "")
            self._set_meta("annoy", json.dumps(record) if record else "")
            self._set_meta("annoy_generation", str(generation))
        return True

    def forest_state(self) -> ForestState | None:
        """The committed forest, or None if there is none. Call it in a snapshot() with the
        reads that rely on it."""
        name = self._meta("annoy_file")
        if not name:
            return None
        try:
            return ForestState(file=name, **json.loads(self._meta("annoy") or ""))
        except (TypeError, ValueError) as error:
            raise damaged(self.folder, f"the record of {name} is unreadable: {error}") from error

    def fresh_songs(self, rev: int) -> tuple[list[bytes], np.ndarray]:
        """Songs written after revision `rev`: (path bytes, vectors float32 (n, n_tags))."""
        rows = self._sql.execute("SELECT path, vector FROM songs WHERE rev > ?", (rev,)).fetchall()
        return [row[0] for row in rows], self._vectors_from_rows(rows)

    def live_items(self, items: list[int], rev: int) -> dict[int, bytes]:
        """item -> path bytes for the forest items whose song still has the vector it had at
        revision `rev` (removed and rewritten songs are left out)."""
        live: dict[int, bytes] = {}
        query = (
            "SELECT a.item, a.path FROM annoy_items AS a JOIN songs AS s ON s.path = a.path "
            "WHERE s.rev <= ? AND a.item IN"
        )
        for rows in self._rows_in(query, items, (rev,)):
            live.update(rows)
        return live
