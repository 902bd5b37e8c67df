"""The committed ONNX teachers (models/teacher/) reproduce TensorFlow's outputs.

models/teacher/reference.npz was written by `python -m qbsd_cli.training.teacher convert`:
a fixed input batch (4 log-mel patches of generated audio, stored exactly as float16) and
the outputs TensorFlow gave for it from the musicnn checkpoints. Only onnxruntime and
numpy are needed here, no TensorFlow.

Tolerance: |onnx - tf| <= 1e-4 + 1e-4 |tf| (np.testing.assert_allclose, rtol = atol = 1e-4).
At conversion the largest differences were 1.6e-6 on probabilities, 2.8e-5 on logits and
penultimate; the max_pool features (values up to 60) differed by up to 4.3e-4 absolute,
5.6e-5 relative, from the float32 round-off of a different convolution order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")

TEACHER_DIR = Path(__file__).resolve().parent.parent / "models" / "teacher"
TEACHERS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference():
    with np.load(TEACHER_DIR / "reference.npz") as data:
        return {key: data[key] for key in data.files}


def _session(name: str):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(TEACHER_DIR / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", TEACHERS)
def test_onnx_teacher_reproduces_tensorflow(name, reference):
    session = _session(name)
    expected = {key.split("/", 1)[1]: value for key, value in reference.items() if key.startswith(name + "/")}
    assert "probabilities" in expected and "penultimate" in expected
    batch = reference["input"].astype(np.float32)
    got = dict(zip(expected, session.run(list(expected), {"melspec": batch})))
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"{name} {key}")


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_metadata_describes_it(name):
    session = _session(name)
    metadata = session.get_modelmeta().custom_metadata_map
    tags = json.loads(metadata["tags"])
    assert len(tags) == 50 and len(set(tags)) == 50
    assert ("guitar" in tags) if name.startswith("MTT") else ("Hip-Hop" in tags)
    front_end = json.loads(metadata["front_end"])
    assert (
        front_end["sample_rate"],
        front_end["n_fft"],
        front_end["hop_length"],
        front_end["n_mels"],
        front_end["patch_frames"],
    ) == (16000, 512, 256, 96, 187)
    assert "musicnn 0.1.0" in json.loads(metadata["provenance"])["source"]
    ((batch, frames, bands),) = [tuple(i.shape) for i in session.get_inputs()]
    assert (frames, bands) == (187, 96)
    widths = {output.name: output.shape[1] for output in session.get_outputs()}
    assert widths["probabilities"] == 50
    assert widths["penultimate"] == (256 if "vgg" in name else 200)


def test_reference_input_is_the_teacher_front_end_of_generated_audio(reference):
    """The stored input is what qbsd_cli.logmel makes of the generated reference audio
    (float16-rounded), so the reference exercises the real front end, loud part included."""
    teacher = pytest.importorskip("qbsd_cli.training.teacher")
    regenerated = teacher.reference_input()
    stored = reference["input"].astype(np.float32)
    assert regenerated.shape == stored.shape == (4, 187, 96)
    # one float16 step (2^-8 at values 4..8) where the float32 log-mel sits on a rounding boundary
    assert np.mean(regenerated != stored) < 1e-3
    np.testing.assert_allclose(regenerated, stored, atol=2**-8)
    assert stored.max() > np.log10(10000 * 6.55 + 1)  # beyond musicnn's float16 overflow


def test_an_undecodable_files_name_is_logged_made_safe(tmp_path):
    """A corpus file's name is untrusted text: the teacher-output log shows it through the
    one sanitiser, so an escape sequence in it cannot reach the terminal."""
    pytest.importorskip("onnx")
    from qbsd_cli.training import accurate
    from qbsd_cli.training.teacher import compute_outputs

    bad = tmp_path / "evil\x1b[31m.mp3"
    bad.write_bytes(b"not audio")
    lines: list[str] = []
    compute_outputs([str(bad)], str(tmp_path / "cache"), str(accurate.TEACHER_DIR), log=lines.append)
    [line] = lines
    assert "\x1b" not in line and "evil\\x1b[31m.mp3" in line
