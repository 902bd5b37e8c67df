"""The CNN's layouts: what the convolutions see, and that every variant exports and runs in `qbsd`."""

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from qbsd_cli.audio import decode  # noqa: E402
from qbsd_cli.features import FeatureParams, MfccExtractor, frames_to_patches  # noqa: E402
from qbsd_cli.model import TagModel  # noqa: E402
from qbsd_cli.training.export import export_onnx, librosa_mel_basis  # noqa: E402
from qbsd_cli.training.network import PatchCNN  # noqa: E402


def test_time_frequency_layout_is_coefficients_by_consecutive_frames():
    params = FeatureParams()
    frames = np.random.default_rng(0).normal(size=(2 * params.frames_per_patch, 39)).astype(np.float32)
    network = PatchCNN(5, params.patch_shape, layout="time_frequency")
    image = network.image(torch.from_numpy(frames_to_patches(frames, params))).numpy()
    assert image.shape == (2, 3, 13, 50)
    for patch in range(2):
        window = frames[patch * 50 : (patch + 1) * 50]  # (time, 39)
        for channel, name in enumerate(("static", "delta", "delta-delta")):
            np.testing.assert_array_equal(
                image[patch, channel], window[:, 13 * channel : 13 * (channel + 1)].T, err_msg=name
            )


@pytest.mark.parametrize("long_frames", [10, 50])
def test_longer_patches_with_time_pooling_run_end_to_end(long_frames, tmp_path, make_audio):
    """A model cut for longer patches stores that in its metadata and `qbsd` cuts patches by it."""
    params = replace(FeatureParams(), long_frames_per_patch=long_frames)
    tags = [f"mood:t{i}" for i in range(6)]
    torch.manual_seed(0)
    network = PatchCNN(len(tags), params.patch_shape, layout="time_frequency", time_pooling=True).eval()
    mel_basis = librosa_mel_basis(params)
    path = tmp_path / "model.onnx"
    export_onnx(network, str(path), tags, params, mel_basis, "test", "test", "none", False)
    model = TagModel(path)
    assert model.params == params
    audio = make_audio.noise("noise.flac", seconds=8.0)
    frames = MfccExtractor(params, mel_basis).frames(decode(str(audio), params.sample_rate).samples)
    patches = frames_to_patches(frames, params)
    assert patches.shape[1:] == (195, long_frames)
    with torch.no_grad():
        expected = network(torch.from_numpy(patches)).numpy()
    np.testing.assert_allclose(model.patch_outputs(patches), expected, atol=1e-5)
    np.testing.assert_allclose(model.analyse(str(audio)).vector, expected.mean(0), atol=1e-4)
