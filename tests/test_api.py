"""The Python API (`import qbsd_cli`), on audio the tests generate: tag, tag_many, Index and
its errors. No ../shared needed: a fresh clone tests the library end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import AudioFactory, write_chord

import qbsd_cli as qbsd
from qbsd_cli import errors


@pytest.fixture
def music(tmp_path) -> AudioFactory:
    factory = AudioFactory(tmp_path / "music")
    factory.chord("chord.wav")
    factory.chord("high chord.flac", frequencies=(880.0, 1108.7, 1318.5))
    factory.noise("noise.flac")
    factory.noise("sparse noise.wav", bursts_per_second=1.0, seed=3)
    return factory


def test_tag_returns_a_vector_over_the_vocabulary(music):
    result = qbsd.tag(music.folder / "chord.wav")
    assert isinstance(result, qbsd.TagResult)
    assert result.vector.shape == (len(result.tags),) and result.vector.dtype == np.float32
    assert np.all((result.vector >= 0) & (result.vector <= 1))
    assert result.duration == pytest.approx(4.0, abs=0.01)
    assert result.model_id.startswith("qbsd-")
    top = result.top(3)
    assert [score for _, score in top] == sorted((score for _, score in top), reverse=True)
    record = result.to_record(top=3, with_vector=True)
    assert json.loads(json.dumps(record))["model"] == result.model_id
    assert len(record["tags"]) == 3 and len(record["vector"]) == len(result.tags)


def test_tag_raises_audio_errors(music):
    broken = music.broken()
    with pytest.raises(qbsd.AudioError):
        qbsd.tag(broken)
    short = write_chord(music.folder / "short.wav", seconds=0.2)
    with pytest.raises(qbsd.TooShortError):
        qbsd.tag(short)


def test_tag_many_yields_results_and_failures_in_order(music):
    paths = [music.folder / "chord.wav", music.broken(), music.folder / "noise.flac"]
    results = list(qbsd.tag_many(paths, jobs=2))
    assert [type(r).__name__ for r in results] == ["TagResult", "Failure", "TagResult"]
    assert results[1].path == str(paths[1]) and "not decodable" in results[1].reason
    alone = qbsd.tag(paths[0])
    np.testing.assert_allclose(results[0].vector, alone.vector, atol=1e-6)


def test_tag_many_with_a_missing_model_raises_before_analysing(music):
    with pytest.raises(qbsd.ModelError, match="model file not found"):
        qbsd.tag_many([music.folder / "chord.wav"], model="/nonexistent/model.onnx")


def test_index_update_similar_search(music, tmp_path):
    with qbsd.Index.open(tmp_path / "index") as index:
        summary = index.update([music.folder], jobs=2)
        assert isinstance(summary, qbsd.IndexSummary)
        assert (summary.added, summary.failed, summary.songs) == (4, 0, 4)
        again = index.update([music.folder])
        assert (again.added, again.unchanged) == (0, 4)

        matches = index.similar(music.folder / "chord.wav", top=3)
        assert [m.rank for m in matches] == [1, 2, 3]
        assert str(music.folder / "chord.wav") not in [m.path for m in matches]
        scores = [m.score for m in matches]
        assert scores == sorted(scores, reverse=True)
        with_self = index.similar(music.folder / "chord.wav", top=1, include_self=True)
        assert with_self[0].path == str(music.folder / "chord.wav")
        assert with_self[0].score == pytest.approx(1.0, abs=1e-4)

        by_vector = index.similar(qbsd.tag(music.folder / "noise.flac"), top=3, exact=True)
        assert str(music.folder / "noise.flac") not in [m.path for m in by_vector]

        found = index.search("calm", top=4)
        assert len(found) == 4 and all(0 <= m.score <= 1 for m in found)
        assert index.search(["mood:calm"], top=4) == found


def test_failures_are_recorded_not_raised(music, tmp_path):
    broken = music.broken()
    index = qbsd.Index(tmp_path / "index")
    seen = []

    class Collect(qbsd.Reporter):
        def failure(self, path, reason):
            seen.append(path)

    summary = index.update([music.folder], reporter=Collect())
    assert summary.failed_now == 1 and seen == [str(broken)]
    assert [f.path for f in index.failures()] == [str(broken)]
    index.close()


def test_unknown_word_suggests_tags(music, tmp_path):
    index = qbsd.Index(tmp_path / "index")
    index.update([music.folder])
    with pytest.raises(qbsd.UnknownTagError) as caught:
        index.search("clam")
    assert "calm" in caught.value.suggestions and "calm" in str(caught.value)
    assert isinstance(caught.value, qbsd.UsageError) and isinstance(caught.value, qbsd.QbsdError)
    index.close()


def test_querying_an_empty_index_says_what_to_do(tmp_path, music):
    with pytest.raises(qbsd.IndexMissingError, match="qbsd index DIR"):
        qbsd.Index(tmp_path / "nothing here").similar(music.folder / "chord.wav")


def test_a_second_writer_is_refused(music, tmp_path):
    from qbsd_cli.store import writer_lock

    folder = tmp_path / "index"
    with writer_lock(folder, wait=False):
        with pytest.raises(qbsd.IndexBusyError, match="another `qbsd index` is running"):
            qbsd.Index(folder).update([music.folder])


def test_vectors_of_another_model_are_refused(music, tmp_path):
    index = qbsd.Index(tmp_path / "index")
    index.update([music.folder])
    query = qbsd.tag(music.folder / "chord.wav")
    stranger = qbsd.TagResult(query.path, query.duration, "qbsd-some-other-model", query.tags, query.vector)
    with pytest.raises(qbsd.ModelMismatchError, match="qbsd-some-other-model"):
        index.similar(stranger)
    index.close()


def test_error_hierarchy():
    for name in ("UsageError", "AudioError", "ModelError", "StoreError"):
        assert issubclass(getattr(errors, name), errors.QbsdError)
    for name in ("IndexMissingError", "IndexDamagedError", "IndexBusyError", "ModelMismatchError"):
        assert issubclass(getattr(errors, name), errors.StoreError)
    assert issubclass(errors.UnknownTagError, errors.UsageError)
    assert issubclass(errors.TooShortError, errors.AudioError)


def test_a_query_that_cannot_be_decoded_names_the_file(music, tmp_path):
    with qbsd.Index(tmp_path / "index") as index:
        index.update([music.folder])
        broken = AudioFactory(tmp_path / "elsewhere").broken()
        with pytest.raises(qbsd.AudioError) as caught:
            index.similar(broken)
    assert str(broken) in str(caught.value)


def test_bad_json_lines_are_failures_and_the_rest_is_stored(music, tmp_path):
    good = qbsd.tag(music.folder / "chord.wav").to_record(top=0, with_vector=True)
    nan = {**good, "path": str(music.folder / "noise.flac"), "vector": [float("nan")] * len(good["vector"])}
    text = {**good, "path": str(music.folder / "sparse noise.wav"), "vector": "0.1 0.2"}
    lines = [json.dumps(good), json.dumps(nan), json.dumps(text), "not json"]
    seen = []

    class Collect(qbsd.Reporter):
        def failure(self, path, reason):
            seen.append(reason)

    with qbsd.Index(tmp_path / "index") as index:
        summary = index.ingest(lines, "records.jsonl", reporter=Collect())
        assert (summary.added, summary.failed_now, summary.songs) == (1, 3, 1)
    assert any("NaN" in reason for reason in seen) and any("list of numbers" in reason for reason in seen)


def test_tag_many_takes_one_path_and_ends_its_workers(music):
    with qbsd.tag_many(music.folder / "chord.wav") as run:
        [result] = list(run)
    assert isinstance(result, qbsd.TagResult)
    run.close()  # closing twice is harmless
    unfinished = qbsd.tag_many([music.folder / "chord.wav", music.folder / "noise.flac"], jobs=1)
    next(unfinished)
    unfinished.close()  # early: the worker is killed, nothing waits for it
