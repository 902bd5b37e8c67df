"""The shipped accurate model (`--model accurate`): the musicnn teachers inside one graph,
heads on the 4Q tags, the teachers' own tags by category; on generated audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import REPO, AudioFactory, write_chord

import qbsd_cli as qbsd
from qbsd_cli import Index, logmel
from qbsd_cli.audio import decode
from qbsd_cli.model import ModelInfo, TagModel, shipped_model_path
from qbsd_cli.training.accurate import TEACHER_TAGS  # the table the model was built from

TEACHERS = REPO / "models" / "teacher"
# what the accurate model adds to the 4Q vocabulary, one of each category
NEW_TAGS = ["instrument:piano", "voice:female", "voice:none", "style:metal", "era:80s", "descriptor:fast"]


@pytest.fixture(scope="module")
def accurate() -> TagModel:
    if not shipped_model_path("accurate").exists():
        pytest.fail("models/qbsd-accurate.onnx is missing: `qbsd train --recipe musicnn-finetuned` writes it")
    return TagModel("accurate")


def test_the_names_fast_and_accurate_pick_the_shipped_models(accurate):
    fast = ModelInfo.read("fast")
    assert fast.front_end in ("mfcc", "mfcc-bands") and accurate.info.front_end == "musicnn-logmel"
    assert accurate.model_id != fast.model_id
    assert accurate.tags[: len(fast.tags)] == fast.tags  # the 4Q tags and quadrants, in the same order
    for name in NEW_TAGS:
        assert name in accurate.tags


def test_tags_verbose_says_which_model_it_is(qbsd):
    result = qbsd("tags", "--verbose", "--model", "accurate")
    assert result.returncode == 0, result
    assert result.err_lines[0].startswith("model qbsd-musicnn-finetuned-")
    assert "instrument:piano" in result.lines
    # on a terminal a second line says which model it is (piped, scripts get the one line)
    assert ModelInfo.read("accurate").description.startswith("accurate:")


def test_teacher_tags_are_the_teachers_own_probabilities(accurate, tmp_path):
    """The graph's instrument/voice/... columns equal the standalone teacher files' tag
    probabilities, synonyms averaged, on the same patches: the composition adds nothing."""
    import onnxruntime

    path = write_chord(tmp_path / "chord.wav", seconds=7.0, sample_rate=16000)
    samples = decode(str(path), logmel.SAMPLE_RATE).samples
    patches = logmel.patches(logmel.log_mel(samples))
    graph = accurate.session.run(["tags"], {"patches": patches})[0]
    probabilities = []
    names = []
    for teacher, prefix in (("MTT_musicnn", "MTT"), ("MSD_musicnn", "MSD")):
        session = onnxruntime.InferenceSession(str(TEACHERS / f"{teacher}.onnx"), providers=["CPUExecutionProvider"])
        names += [f"{prefix}:{tag}" for tag in json.loads(session.get_modelmeta().custom_metadata_map["tags"])]
        probabilities.append(session.run(["probabilities"], {"melspec": patches})[0])
    probabilities = np.concatenate(probabilities, axis=1)
    for name, sources in TEACHER_TAGS.items():
        expected = probabilities[:, [names.index(source) for source in sources]].mean(axis=1)
        np.testing.assert_allclose(graph[:, accurate.tags.index(name)], expected, atol=1e-5, err_msg=name)


def test_tag_with_the_accurate_model(accurate, tmp_path):
    music = AudioFactory(tmp_path / "music")
    result = qbsd.tag(music.chord("chord.wav", seconds=8.0), model="accurate")
    assert result.model_id == accurate.model_id
    assert result.vector.shape == (len(accurate.tags),)
    assert np.all((result.vector >= 0) & (result.vector <= 1))
    with pytest.raises(qbsd.TooShortError, match="too short"):
        qbsd.tag(music.chord("blip.wav", seconds=0.5), model="accurate")


def test_an_index_of_one_model_refuses_the_other(qbsd, tmp_path):
    music = AudioFactory(tmp_path / "music")
    music.chord("chord.wav", seconds=6.0)
    music.noise("noise.flac", seconds=6.0)
    index = tmp_path / "index"
    built = qbsd("index", music.folder, "--model", "accurate", index=index)
    assert built.returncode == 0, built
    searched = qbsd("search", "piano", index=index)
    assert searched.returncode == 0, searched
    assert len(searched.json()) == 2
    outsider = AudioFactory(tmp_path / "elsewhere").noise("outsider.wav", seed=5)
    refused = qbsd("similar", outsider, "--model", "fast", index=index)
    assert refused.returncode == 1, refused
    assert "qbsd-musicnn-finetuned-" in refused.stderr and "qbsd-cnn-" in refused.stderr


def test_an_index_keeps_the_shipped_model_it_was_built_with(qbsd, tmp_path):
    music = AudioFactory(tmp_path / "music")
    music.chord("chord.wav", seconds=6.0)
    index = tmp_path / "index"
    assert qbsd("index", music.folder, "--model", "accurate", index=index).returncode == 0
    music.noise("noise.flac", seconds=6.0)
    again = qbsd("index", music.folder, index=index)  # no --model: the index's own
    assert again.returncode == 0, again
    outsider = AudioFactory(tmp_path / "elsewhere").noise("outsider.wav", seed=5)
    # the outsider and noise.flac are noise bursts of one generator, the same recording to
    # the model: both songs are wanted here, so duplicates are kept
    found = qbsd("similar", outsider, "--keep-duplicates", index=index)
    assert found.returncode == 0, found
    assert len(found.json()) == 2


def test_rebuild_keeps_the_shipped_model_of_the_index(qbsd, tmp_path):
    music = AudioFactory(tmp_path / "music")
    music.chord("chord.wav", seconds=6.0)
    index = tmp_path / "index"
    assert qbsd("index", music.folder, "--model", "accurate", index=index).returncode == 0
    rebuilt = qbsd("index", "--rebuild", music.folder, index=index)
    assert rebuilt.returncode == 0, rebuilt
    with Index.open(index) as reopened:
        assert reopened.model_id == ModelInfo.read("accurate").model_id
