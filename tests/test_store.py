"""The song index (qbsd_cli.store) on real files in a temporary folder, without mocks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from qbsd_cli import ranking
from qbsd_cli.store import (
    ANNOY_TREES,
    SCHEMA_VERSION,
    SEARCH_K_FACTOR,
    FileState,
    IndexBusyError,
    IndexDamagedError,
    IndexMissingError,
    IndexStore,
    ModelMismatchError,
    StoreError,
    writer_lock,
)

REPO = Path(__file__).resolve().parent.parent
N_TAGS = 189
TAGS = [f"tag{i}" for i in range(N_TAGS)]
MODEL = "qbsd-test-0123456789"
# Few trees make Annoy worth using (search_k below the song count) on a quick 6,000-song index.
FEW_TREES = 5


def tag_vectors(rng: np.random.Generator, count: int, mixing: np.ndarray) -> np.ndarray:
    """Vectors shaped like a tagger's sigmoid outputs: mostly small values, a few near 1,
    with tags correlated through a 16-dimensional latent "style" plus per-song noise."""
    logits = rng.normal(size=(count, mixing.shape[0])) @ mixing * 0.5
    logits += rng.normal(size=(count, N_TAGS)) * 0.7 - 2.0
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def filled_store(folder: Path, vectors: np.ndarray) -> IndexStore:
    store = IndexStore(folder)
    store.bind_model(MODEL, TAGS)
    with store.transaction():
        for i, vector in enumerate(vectors):
            store.put_song(f"/music/{i:06d}.mp3", 1000 + i, 10**18 + i, 180.0, vector)
    return store


def annoy_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("songs-*.annoy"))


def overlap(first: list[tuple[str, float]], second: list[tuple[str, float]]) -> float:
    return len({path for path, _ in first} & {path for path, _ in second}) / len(second)


@pytest.fixture
def store(tmp_path):
    with IndexStore(tmp_path / "index") as opened:
        opened.bind_model(MODEL, TAGS)
        yield opened


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(N_TAGS, dtype=np.float32)


# --------------------------------------------------------------------------- songs and failures


def test_put_get_upsert_and_known_files(store):
    store.put_song("/a.mp3", 10, 111, 200.5, vector(1))
    store.put_song("/b.mp3", 20, 222, 100.0, vector(2))
    assert store.song_count() == 2
    np.testing.assert_array_equal(store.vector_for("/a.mp3"), vector(1))
    assert store.vector_for("/a.mp3").dtype == np.float32
    assert store.vector_for("/missing.mp3") is None

    store.put_song("/a.mp3", 11, 333, 201.0, vector(3))
    assert store.song_count() == 2
    np.testing.assert_array_equal(store.vector_for("/a.mp3"), vector(3))
    assert store.known_files() == {"/a.mp3": (11, 333, "ok"), "/b.mp3": (20, 222, "ok")}

    paths, matrix = store.all_vectors()
    assert paths == ["/a.mp3", "/b.mp3"]
    assert matrix.shape == (2, N_TAGS) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[1], vector(2))


def test_failures_and_songs_replace_each_other(store):
    store.put_song("/a.mp3", 10, 111, 200.0, vector(1))
    store.put_failure("/a.mp3", 12, 112, "cannot decode")
    store.put_failure("/0.wma", 5, 6, "unsupported")
    assert store.song_count() == 0
    assert store.vector_for("/a.mp3") is None
    assert store.failures() == [("/0.wma", "unsupported"), ("/a.mp3", "cannot decode")]
    assert store.known_files() == {"/a.mp3": (12, 112, "failed"), "/0.wma": (5, 6, "failed")}

    store.put_failure("/a.mp3", 13, 113, "still broken")
    assert store.failures()[1] == ("/a.mp3", "still broken")

    store.put_song("/a.mp3", 14, 114, 200.0, vector(1))
    assert store.failures() == [("/0.wma", "unsupported")]
    assert store.known_files()["/a.mp3"] == (14, 114, "ok")


def test_remove_counts_rows(store):
    store.put_song("/a.mp3", 1, 1, 1.0, vector(1))
    store.put_song("/b.mp3", 1, 1, 1.0, vector(2))
    store.put_failure("/c.mp3", 1, 1, "bad")
    assert store.remove(["/a.mp3", "/c.mp3", "/nothing.mp3"]) == 2
    assert store.remove([]) == 0
    assert store.known_files() == {"/b.mp3": (1, 1, "ok")}
    paths, matrix = store.all_vectors()
    assert paths == ["/b.mp3"] and matrix.shape == (1, N_TAGS)


def test_empty_store_and_vector_checks(store):
    paths, matrix = store.all_vectors()
    assert paths == [] and matrix.shape == (0, N_TAGS) and matrix.dtype == np.float32
    assert store.nearest(vector(1), 5) == []
    assert store.exact_nearest(vector(1), 5) == []
    assert _by_tags(store, [0, 1], 5) == []
    with pytest.raises(ValueError):
        store.put_song("/a.mp3", 1, 1, 1.0, np.zeros(N_TAGS - 1, dtype=np.float32))
    with pytest.raises(ValueError):
        store.put_song("/a.mp3", 1, 1, 1.0, np.full(N_TAGS, np.nan, dtype=np.float32))
    assert store.song_count() == 0


def test_transaction_commits_or_rolls_back(store, tmp_path):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_song("/a.mp3", 1, 1, 1.0, vector(1))
            store.put_failure("/b.mp3", 1, 1, "bad")
            raise RuntimeError("interrupted")
    assert store.known_files() == {}

    with store.transaction():
        store.put_song("/a.mp3", 1, 1, 1.0, vector(1))
        with store.transaction():
            store.put_song("/b.mp3", 1, 1, 1.0, vector(2))
        store.remove(["/a.mp3"])
    with IndexStore(tmp_path / "index", create=False) as other:
        assert other.known_files() == {"/b.mp3": (1, 1, "ok")}


def test_non_utf8_path_round_trips(store, tmp_path):
    path = os.fsdecode(b"/music/caf\xe9 \xff.mp3")
    assert "\udcff" in path
    store.put_song(path, 1, 2, 3.0, vector(1))
    broken = os.fsdecode(b"/music/\xfe.ogg")
    store.put_failure(broken, 4, 5, "cannot decode " + os.fsdecode(b"\xfe"))
    with IndexStore(tmp_path / "index", create=False) as reopened:
        assert reopened.known_files()[path] == (1, 2, "ok")
        np.testing.assert_array_equal(reopened.vector_for(path), vector(1))
        assert reopened.all_vectors()[0] == [path]
        assert os.fsencode(reopened.exact_nearest(vector(1), 1)[0][0]) == b"/music/caf\xe9 \xff.mp3"
        ((failed, reason),) = reopened.failures()
        assert os.fsencode(failed) == b"/music/\xfe.ogg"
        assert reason == "cannot decode \\udcfe"
        assert reopened.remove([path]) == 1


def test_known_files_are_file_states(store):
    store.put_song("/a.mp3", 10, 111, 1.0, vector(1))
    store.put_failure("/b.mp3", 20, 222, "bad")
    song, failure = store.known_files()["/a.mp3"], store.known_files()["/b.mp3"]
    assert isinstance(song, FileState) and (song.size, song.time_ns, song.status) == (10, 111, "ok")
    assert song.is_song and not song.is_failure
    assert failure.time_ns == 222 and failure.is_failure and not failure.is_song


# --------------------------------------------------------------------------- opening and the model


def test_model_binding(tmp_path):
    folder = tmp_path / "index"
    with IndexStore(folder) as store:
        assert store.model_id is None and store.n_tags is None
        store.bind_model(MODEL, TAGS)
        store.bind_model(MODEL, TAGS)
    with IndexStore(folder, create=False) as store:
        assert store.model_id == MODEL and store.n_tags == N_TAGS and store.tags == TAGS
        with pytest.raises(ModelMismatchError) as caught:
            store.bind_model("qbsd-other-ffffffffff", TAGS)
        assert MODEL in str(caught.value) and "qbsd-other-ffffffffff" in str(caught.value)
        assert "--rebuild" in str(caught.value)
        assert store.model_id == MODEL


def test_missing_index_is_reported(tmp_path):
    with pytest.raises(StoreError, match="no index at .*qbsd index"):
        IndexStore(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_garbage_database_is_a_store_error(tmp_path):
    folder = tmp_path / "index"
    filled_store(folder, vector(1)[None, :]).close()
    (folder / "songs.sqlite").write_bytes(b"this is not a database, just garbage\n" * 400)
    for create in (False, True):
        with pytest.raises(StoreError) as caught:
            IndexStore(folder, create=create)
        assert f"delete the folder {folder}" in str(caught.value)
        assert "qbsd index" in str(caught.value)


def test_require_model(store, tmp_path):
    store.require_model(MODEL, "the query")
    with pytest.raises(ModelMismatchError) as caught:
        store.require_model("qbsd-other-ffffffffff", "the query")
    assert str(caught.value).startswith(
        f"the query: model qbsd-other-ffffffffff; the index at {store.folder} holds model {MODEL}: "
    )
    assert "`qbsd index --rebuild DIR`" in str(caught.value)
    with IndexStore(tmp_path / "unbound") as unbound:
        unbound.require_model("qbsd-other-ffffffffff", "the query")  # no model yet: any will do


def test_error_kinds(tmp_path):
    with pytest.raises(IndexMissingError):
        IndexStore(tmp_path / "nowhere", create=False)
    folder = tmp_path / "index"
    filled_store(folder, vector(1)[None, :]).close()
    (folder / "songs.sqlite").write_bytes(b"this is not a database, just garbage\n" * 400)
    with pytest.raises(IndexDamagedError, match="`qbsd index --rebuild DIR`"):
        IndexStore(folder, create=False)


# Schema version 1, as qbsd wrote it before the failures' change time got its own name.
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE songs (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                    duration REAL NOT NULL, vector BLOB NOT NULL, rev INTEGER NOT NULL);
CREATE INDEX songs_rev ON songs (rev);
CREATE TABLE failures (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                       reason TEXT NOT NULL);
CREATE TABLE annoy_items (item INTEGER PRIMARY KEY, path BLOB NOT NULL);
"""


def test_a_version_1_index_is_migrated(tmp_path):
    folder = tmp_path / "index"
    folder.mkdir()
    old = sqlite3.connect(folder / "songs.sqlite")
    old.executescript(SCHEMA_1)
    old.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("schema_version", "1"),
            ("song_rev", "1"),
            ("annoy_next_generation", "1"),
            ("model_id", MODEL),
            ("tags", json.dumps(TAGS)),
            ("n_tags", str(N_TAGS)),
        ],
    )
    old.execute(
        "INSERT INTO songs VALUES (?, ?, ?, ?, ?, ?)", (b"/a.mp3", 10, 111, 1.0, vector(1).astype("<f4").tobytes(), 1)
    )
    old.execute("INSERT INTO failures VALUES (?, ?, ?, ?)", (b"/b.wma", 20, 222, "unsupported"))
    old.commit()
    old.close()
    for _reopen in range(2):
        with IndexStore(folder, create=False) as store:
            assert store.known_files() == {"/a.mp3": (10, 111, "ok"), "/b.wma": (20, 222, "failed")}
            assert store.failures() == [("/b.wma", "unsupported")]
            np.testing.assert_array_equal(store.vector_for("/a.mp3"), vector(1))
    with sqlite3.connect(folder / "songs.sqlite") as check:
        columns = [row[1] for row in check.execute("PRAGMA table_info(failures)")]
        version = check.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert columns == ["path", "size", "changed_ns", "reason"] and version == str(SCHEMA_VERSION)
    with IndexStore(folder, create=False) as store:
        store.put_failure("/b.wma", 21, 223, "still unsupported")
        assert store.known_files()["/b.wma"] == (21, 223, "failed")


# --------------------------------------------------------------------------- queries


def _by_tags(store, columns: list[int], count: int) -> list[tuple[str, float]]:
    """Songs ranked by the mean of their scores for `columns`, as `qbsd search` ranks them."""
    if store.n_tags is None:
        return []
    ranked = ranking.best(store, ranking.Query([], [], columns), [], [], ranking.ListRules(count))
    return [(song.path, song.score) for song in ranked]


def test_exact_nearest_and_ranking_by_tags(store):
    base = np.zeros(N_TAGS, dtype=np.float32)
    a, b, c = base.copy(), base.copy(), base.copy()
    a[0] = 1.0
    b[0], b[1] = 1.0, 1.0
    c[1], c[2] = 0.2, 0.9
    for path, v in (("/a", a), ("/b", b), ("/c", c)):
        store.put_song(path, 1, 1, 1.0, v)
    result = store.exact_nearest(a, 3)
    assert [path for path, _ in result] == ["/a", "/b", "/c"]
    assert result[0][1] == pytest.approx(1.0)
    assert result[1][1] == pytest.approx(1 / np.sqrt(2))
    assert result[2][1] == pytest.approx(0.0)
    assert [path for path, _ in store.exact_nearest(a, 5, exclude="/a")] == ["/b", "/c"]
    # Small indexes never need Annoy: nearest gives the exact answer.
    assert store.nearest(a, 2, exclude="/a") == store.exact_nearest(a, 2, exclude="/a")

    ranked = _by_tags(store, [1, 2], 2)
    assert [path for path, _ in ranked] == ["/c", "/b"]
    assert ranked[0][1] == pytest.approx(0.55)


def test_annoy_agrees_with_exact_search(tmp_path):
    rng = np.random.default_rng(20240607)
    mixing = rng.normal(size=(16, N_TAGS))
    vectors = tag_vectors(rng, 20_000, mixing)
    store = filled_store(tmp_path / "index", vectors)
    started = time.perf_counter()
    store.rebuild_annoy()
    build_seconds = time.perf_counter() - started

    song_queries = rng.choice(len(vectors), 100, replace=False)
    new_queries = tag_vectors(rng, 100, mixing)
    paths, matrix = store.all_vectors()
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    row_of = {path: row for row, path in enumerate(paths)}
    agreements = []
    started = time.perf_counter()
    for i in song_queries:
        itself = f"/music/{i:06d}.mp3"
        found = store.nearest(vectors[i], 10, exclude=itself)
        assert len(found) == 10 and itself not in {path for path, _ in found}
        agreements.append(overlap(found, store.exact_nearest(vectors[i], 10, exclude=itself)))
    for query in new_queries:
        found = store.nearest(query, 10)
        agreements.append(overlap(found, store.exact_nearest(query, 10)))
        # Similarities from Annoy's distances match the exact cosines of the same songs.
        cosines = unit @ (query / np.linalg.norm(query))
        for path, similarity in found:
            assert similarity == pytest.approx(cosines[row_of[path]], abs=1e-4)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    query_seconds = time.perf_counter() - started
    agreement = float(np.mean(agreements))
    print(
        f"\nAnnoy {ANNOY_TREES} trees, search_k {SEARCH_K_FACTOR * ANNOY_TREES * 10} for top-10: "
        f"build {build_seconds:.2f} s for 20,000 songs, top-10 agreement with exact "
        f"{agreement:.3f} over 200 queries ({query_seconds:.1f} s including exact searches)"
    )
    assert agreement >= 0.95
    store.close()


# --------------------------------------------------------------------------- the Annoy file


@pytest.fixture
def built(tmp_path):
    """6,000 songs with a small forest, so that top-10 queries go through Annoy."""
    rng = np.random.default_rng(5)
    vectors = tag_vectors(rng, 6_000, rng.normal(size=(16, N_TAGS)))
    folder = tmp_path / "index"
    store = filled_store(folder, vectors)
    store.rebuild_annoy(FEW_TREES)
    yield folder, store, vectors
    store.close()


def test_rebuild_replaces_the_file_and_nearest_works(built):
    folder, store, vectors = built
    first = annoy_files(folder)
    store.rebuild_annoy(FEW_TREES)
    assert len(first) == 1 and len(annoy_files(folder)) == 1 and annoy_files(folder) != first
    assert not list(folder.glob("*.tmp"))
    with IndexStore(folder, create=False) as reader:
        itself = "/music/000007.mp3"
        found = reader.nearest(vectors[7], 10, exclude=itself)
        assert overlap(found, reader.exact_nearest(vectors[7], 10, exclude=itself)) >= 0.8


def test_leftovers_of_a_killed_build_are_harmless(built):
    folder, store, vectors = built
    store.rebuild_annoy(FEW_TREES)
    (current,) = annoy_files(folder)
    older = int(current[len("songs-") : -len(".annoy")]) - 1
    # An older build killed while writing, and one killed after its rename but before its commit.
    (folder / f"songs-{older}.annoy.tmp").write_bytes(b"half")
    (folder / f"songs-{older}.annoy").write_bytes(os.urandom(4096))
    with IndexStore(folder, create=False) as reader:
        assert len(reader.nearest(vectors[0], 10)) == 10
    store.rebuild_annoy(FEW_TREES)
    assert len(annoy_files(folder)) == 1 and not list(folder.glob("*.tmp"))
    assert len(store.nearest(vectors[0], 10)) == 10


REBUILD_FOREVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from qbsd_cli.store import IndexStore
    store = IndexStore(sys.argv[2], create=False)
    while True:
        store.rebuild_annoy(int(sys.argv[3]))
        print("built", flush=True)
""")


def test_killing_a_rebuild_at_any_moment_keeps_the_index_usable(built):
    folder, store, vectors = built
    expected = store.exact_nearest(vectors[9], 10)
    for delay in (0.0, 0.03, 0.08, 0.15):
        child = subprocess.Popen(
            [sys.executable, "-c", REBUILD_FOREVER, str(REPO), str(folder), str(FEW_TREES)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline() == "built\n"
            time.sleep(delay)
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        with IndexStore(folder, create=False) as reader:
            assert overlap(reader.nearest(vectors[9], 10), expected) >= 0.8
    store.rebuild_annoy(FEW_TREES)
    assert len(annoy_files(folder)) == 1 and not list(folder.glob("*.tmp"))


def test_nearest_sees_changes_made_after_the_build(built):
    folder, store, vectors = built
    query = vectors[42]
    before = store.nearest(query, 10, exclude="/music/000042.mp3")
    gone = before[0][0]
    with store.transaction():
        store.remove([gone])
        store.put_song("/music/new.mp3", 1, 1, 1.0, query * 2)  # same direction: cosine 1
        store.put_song(before[1][0], 1, 1, 1.0, 1.0 - query)  # changed: now far away
    after = store.nearest(query, 10, exclude="/music/000042.mp3")
    paths = [path for path, _ in after]
    assert paths[0] == "/music/new.mp3" and after[0][1] == pytest.approx(1.0, abs=1e-5)
    assert gone not in paths and before[1][0] not in paths
    assert len(after) == 10
    assert overlap(after, store.exact_nearest(query, 10, exclude="/music/000042.mp3")) >= 0.8


def test_damaged_annoy_file_is_a_store_error(built):
    folder, store, vectors = built
    (name,) = annoy_files(folder)
    annoy_path = folder / name
    content = annoy_path.read_bytes()
    annoy_path.write_bytes(content[: len(content) // 2])
    with IndexStore(folder, create=False) as reader:
        with pytest.raises(StoreError, match="qbsd index"):
            reader.nearest(vectors[0], 10)
    annoy_path.write_bytes(os.urandom(len(content)))  # same size, garbage
    with IndexStore(folder, create=False) as reader:
        with pytest.raises(StoreError, match="qbsd index"):
            reader.nearest(vectors[0], 10)
        # Exact search does not depend on the forest.
        assert len(reader.exact_nearest(vectors[0], 10)) == 10
    store.rebuild_annoy(FEW_TREES)
    with IndexStore(folder, create=False) as reader:
        assert len(reader.nearest(vectors[0], 10)) == 10


def test_missing_annoy_file_falls_back_to_exact(built):
    folder, store, vectors = built
    for path in folder.glob("songs-*.annoy"):
        path.unlink()
    with IndexStore(folder, create=False) as reader:
        assert reader.nearest(vectors[3], 10) == reader.exact_nearest(vectors[3], 10)


# --------------------------------------------------------------------------- the writer lock

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from qbsd_cli.store import IndexBusyError, IndexStore
    store = IndexStore(sys.argv[2], create=False)
    try:
        with store.writer_lock(wait=False):
            print("acquired")
    except IndexBusyError as error:
        print("busy:", error)
""")


def run_child(folder: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_writer_lock_excludes_a_second_process(store):
    folder = store.folder
    with store.writer_lock():
        with store.writer_lock(wait=False):  # re-entering on the same object does not block
            pass
        assert run_child(folder) == (
            f"busy: another `qbsd index` is running on the index at {folder}; try again when it has finished"
        )
        # flock also separates two opens within one process.
        with IndexStore(folder, create=False) as other, pytest.raises(IndexBusyError):
            with other.writer_lock(wait=False):
                pass
    assert run_child(folder) == "acquired"
    with store.writer_lock(wait=False):
        pass


def test_writer_lock_of_a_folder(tmp_path, store):
    folder = tmp_path / "new" / "index"
    with writer_lock(folder):  # makes the folder
        assert (folder / "lock").is_file()
    with store.writer_lock(), pytest.raises(IndexBusyError) as caught:
        with writer_lock(store.folder, wait=False):
            pass
    assert str(caught.value) == (
        f"another `qbsd index` is running on the index at {store.folder}; try again when it has finished"
    )
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(StoreError, match="cannot open the index at"):
        with writer_lock(tmp_path / "a-file" / "index"):
            pass


def test_reset_deletes_the_index_but_not_the_lock(built):
    folder, store, vectors = built
    (folder / "songs-99.annoy.tmp").write_bytes(b"half")
    store.close()
    with writer_lock(folder):
        IndexStore.reset(folder)
        assert sorted(path.name for path in folder.iterdir()) == ["lock"]
    with pytest.raises(IndexMissingError):
        IndexStore(folder, create=False)
    IndexStore.reset(folder / "nowhere")  # nothing to delete
    with IndexStore(folder) as fresh:
        assert fresh.known_files() == {} and fresh.model_id is None


def test_songs_without_names_are_found_until_their_names_are_read(tmp_path):
    """paths_without_info finds songs stored without their names, and, once the writer
    said every name is read, answers without reading the songs table (the query plan shows
    it), until a song is stored without its names again."""
    from qbsd_cli.songinfo import SongInfo

    rng = np.random.default_rng(3)
    vectors = rng.random((3, 4)).astype(np.float32)
    with IndexStore(tmp_path / "index", create=True) as store:
        store.bind_model("model-x", ["a", "b", "c", "d"])
        named = SongInfo("Artist", "Album", "Title", 4.0, tagged=True)
        store.put_song("/music/named.flac", 1, 1, 4.0, vectors[0], named)
        assert store.paths_without_info() == []
        store.put_song("/music/unnamed.flac", 1, 1, 4.0, vectors[1])
        assert store.paths_without_info() == ["/music/unnamed.flac"]
        store.set_song_info("/music/unnamed.flac", named)
        assert store.paths_without_info() == []  # read again: the flag is still up
        store.all_info_read()
        statements = []
        store._connection.set_trace_callback(statements.append)
        assert store.paths_without_info() == []
        store._connection.set_trace_callback(None)
        assert not any("FROM songs" in statement for statement in statements), statements
        store.put_song("/music/another.flac", 1, 1, 4.0, vectors[2])
        assert store.paths_without_info() == ["/music/another.flac"]
