"""`qbsd train` as a user runs it: short real runs of the default recipe and of an accurate
recipe, then the model each wrote tags a clip and names itself."""

import pytest

pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")


def train_one_epoch(qbsd, data, limit: int, output, cache, *options, timeout: int):
    """`qbsd train` on the first `limit` songs of `data` for one epoch, writing `output`."""
    return qbsd(
        "train",
        "--data",
        data,
        "--limit",
        str(limit),
        "--epochs",
        "1",
        "--output",
        output,
        "--cache",
        cache,
        *options,
        timeout=timeout,
    )


def test_default_recipe_trains_exports_and_tags(qbsd, moods4q_root, clip_paths, tmp_path):
    model = tmp_path / "small.onnx"
    trained = train_one_epoch(qbsd, moods4q_root, 24, model, tmp_path / "cache", "--jobs", "2", timeout=600)
    assert trained.returncode == 0, trained
    assert model.stat().st_size > 0
    tagged = qbsd("tag", "--model", model, "--top", "3", clip_paths[0])
    assert tagged.returncode == 0, tagged
    record = tagged.json()[0]
    assert record["model"].startswith("qbsd-cnn-tf-stats-")
    assert record["model"] in trained.stderr  # the id it reported is the id the file carries
    assert len(record["tags"]) == 3


def test_int8_convolutions_are_refused_where_they_were_not_measured(qbsd, moods4q_root, tmp_path):
    """Only the band-student blends (the fast model's recipes) take --int8-convolutions: the
    accurate model's convolutions ran slower in int8, the others were never measured. The
    refusal comes before any training."""
    model = tmp_path / "small.onnx"
    refused = qbsd(
        "train", "--data", moods4q_root, "--limit", "24", "--output", model, "--int8-convolutions", "--jobs", "1"
    )
    assert refused.returncode == 2, refused
    assert "--int8-convolutions" in refused.stderr and "cnn-wide-student-bands" in refused.stderr
    assert "cnn-tf-stats" in refused.stderr
    assert "songs," not in refused.stderr and "computing features" not in refused.stderr  # nothing loaded
    assert not model.exists()


def test_the_accurate_recipe_with_its_mid_end_tuned_trains_and_tags(qbsd, moods4q_root, clip_paths, tmp_path):
    """`musicnn-midend-finetuned` from an empty cache: teacher outputs, pooled features and
    the mid-end's inputs computed, one epoch, and the model it wrote tags a clip as itself."""
    model = tmp_path / "accurate.onnx"
    trained = train_one_epoch(
        qbsd, moods4q_root, 8, model, tmp_path / "cache", "--recipe", "musicnn-midend-finetuned", timeout=900
    )
    assert trained.returncode == 0, trained
    assert "mid-end inputs" in trained.stderr and "fine-tuning epoch 1/1" in trained.stderr
    tagged = qbsd("tag", "--model", model, "--top", "3", clip_paths[0])
    assert tagged.returncode == 0, tagged
    record = tagged.json()[0]
    assert record["model"].startswith("qbsd-musicnn-midend-finetuned-")
    assert record["model"] in trained.stderr
