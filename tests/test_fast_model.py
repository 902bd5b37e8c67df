"""The shipped fast model's vocabulary: the 4Q tags and quadrants plus the teacher-derived
instrument, voice, style, era and descriptor tags, from both halves of its blend (or from
its statistics student alone where metadata `qbsd.statistics_only_tags` names them, as in
the models before the band student). Generated audio."""

from __future__ import annotations

import numpy as np
from helpers import AudioFactory, write_chord

from qbsd_cli.audio import decode
from qbsd_cli.features import song_statistics
from qbsd_cli.frontends import LOGMEL_BANDS
from qbsd_cli.model import ModelInfo, TagModel
from qbsd_cli.training.accurate import TEACHER_TAGS  # the table both models were built from

NEW_TAGS = ["instrument:piano", "voice:female", "voice:none", "style:metal", "era:80s", "descriptor:fast"]


def test_both_shipped_models_have_the_same_vocabulary():
    fast, accurate = ModelInfo.read("fast"), ModelInfo.read("accurate")
    assert fast.tags == accurate.tags
    for name in NEW_TAGS:
        assert name in fast.tags
    assert fast.tags[-len(TEACHER_TAGS) :] == list(TEACHER_TAGS)
    assert list(fast.statistics_only_tags) in ([], list(TEACHER_TAGS))


def test_the_song_vector_mixes_both_halves_as_the_metadata_says(tmp_path):
    """Tags the patch half lacks (`qbsd.statistics_only_tags`) have a zero per-patch column
    and take the student's score unmixed; every other tag keeps the blend's weights; the
    statistics half takes what the model's metadata names (the MFCC statistics, and the
    log-mel band statistics); teacher-derived scores are probabilities."""
    model = TagModel("fast")
    samples = decode(str(write_chord(tmp_path / "chord.wav", seconds=8.0)), model.front_end.sample_rate).samples
    patches, frames, bands = model.front_end.patches_and_bands(samples)
    per_patch = model.patch_outputs(patches)
    inputs = song_statistics(frames)
    if LOGMEL_BANDS in model.info.statistics_features:  # the 96-band log-mel's summaries follow
        inputs = np.concatenate([inputs, bands])
    statistics = model.statistics_outputs(inputs[None, :])[0]
    only = [model.tags.index(tag) for tag in model.info.statistics_only_tags]
    shared = [i for i in range(len(model.tags)) if i not in set(only)]
    assert np.all(per_patch[:, only] == 0)
    vector = model.vector_from_samples(samples)
    np.testing.assert_allclose(vector[only], statistics[only], atol=1e-6)
    derived = [model.tags.index(tag) for tag in TEACHER_TAGS]
    weight = model.statistics_weight
    expected = (1 - weight) * per_patch[:, shared].mean(axis=0) + weight * statistics[shared]
    np.testing.assert_allclose(vector[shared], expected, atol=1e-5)
    assert np.all((vector[derived] >= 0) & (vector[derived] <= 1))


def test_search_for_an_instrument_on_a_fast_index(qbsd, tmp_path):
    music = AudioFactory(tmp_path / "music")
    music.chord("chord.wav", seconds=6.0)
    music.noise("noise.flac", seconds=6.0)
    index = tmp_path / "index"
    assert qbsd("index", music.folder, index=index).returncode == 0
    found = qbsd("search", "calm", "piano", index=index)
    assert found.returncode == 0, found
    assert len(found.json()) == 2
