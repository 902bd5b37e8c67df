"""Fuzzing the decoder and the analysis with hypothesis: whatever bytes a file holds, the
result is a song vector of finite values or a clean AudioError / TooShortError, never
another exception and never a hang.

The inputs are files on disk (the decoders read files): random bytes under audio
extensions, WAV files with a valid RIFF layout whose sizes, format fields and channel
counts are mangled, and real MP3/FLAC/WAV files with bytes flipped or cut off. Each
example runs in this process against the model in use, with a per-example deadline;
a watchdog ends the whole test with a traceback if one example ever hangs.
"""

from __future__ import annotations

import faulthandler
import io
import os
import struct
import tempfile
from datetime import timedelta

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qbsd_cli.audio import AudioError, decode_segments  # noqa: E402
from qbsd_cli.errors import TooShortError  # noqa: E402
from qbsd_cli.model import TagModel  # noqa: E402

EXAMPLES = 100
#: Per example; generous because the machine may be busy (an example takes ~10-100 ms).
DEADLINE = timedelta(seconds=10)
#: The whole test; far more than it needs, so this only fires on a real hang.
WATCHDOG_S = 240

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.fixture(scope="module")
def model() -> TagModel:
    return TagModel(None, threads=1)  # the model qbsd uses: $QBSD_MODEL or the shipped one


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="qbsd-fuzz-") as folder:
        yield folder


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def check_file(model: TagModel, path: str) -> None:
    """The property: a finite vector of the model's length, or a clean one-line error."""
    try:
        segments = list(decode_segments(path, model.params.sample_rate, 30.0, 4))
    except AudioError as error:
        assert str(error) and "\n" not in str(error)
        segments = None
    if segments is not None:
        for segment in segments:
            assert segment.samples.dtype == np.float32 and segment.samples.ndim == 1
            assert np.all(np.isfinite(segment.samples))
    try:
        result = model.analyse(path)
    except (AudioError, TooShortError) as error:
        assert str(error) and "\n" not in str(error)
        return
    assert result.vector.shape == (len(model.tags),)
    assert np.all(np.isfinite(result.vector)), result.vector
    assert result.duration > 0


def write(workdir: str, name: str, data: bytes) -> str:
    path = os.path.join(workdir, name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


# --------------------------------------------------------------------------- strategies

WAV_FIELDS = [
    "payload",
    "riff_size",
    "format_tag",
    "channels",
    "rate",
    "byte_rate",
    "block_align",
    "bits",
    "fmt_size",
    "data_size",
    "extra_chunk_size",
    "header",
]


@st.composite
def wav_files(draw) -> bytes:
    """A RIFF/WAVE file built consistently, then with up to three fields mangled: sizes,
    format tag, channel count, sample rate, bit depth, chunk sizes, the magic."""
    mangled = set(draw(st.one_of(st.just([]), st.lists(st.sampled_from(WAV_FIELDS), min_size=1, max_size=3))))

    def field(name: str, good: int, bits: int) -> int:
        return draw(st.integers(0, (1 << bits) - 1)) if name in mangled else good

    format_tag = draw(st.sampled_from([1, 3]))
    bits = draw(st.sampled_from([8, 16, 24, 32]) if format_tag == 1 else st.sampled_from([32, 64]))
    channels = draw(st.sampled_from([1, 2, 6]))
    rate = draw(st.sampled_from([8000, 22050, 44100, 96000]))
    seconds = draw(st.one_of(st.just(1.0), st.floats(0.0, 1.5)))
    frames = int(seconds * rate)
    kind = draw(st.sampled_from(["noise", "zeros", "extremes", "random"]))
    dtype = {8: "u1", 16: "<i2", 24: "u1", 32: "<i4" if format_tag == 1 else "<f4", 64: "<f8"}[bits]
    n_values = frames * channels * (3 if bits == 24 else 1)
    rng = np.random.default_rng(frames)
    if kind == "zeros":
        payload = np.zeros(n_values, dtype=dtype).tobytes()
    elif kind == "extremes" and format_tag == 3:
        values = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, 0.5, 1e30])
        payload = np.resize(values, n_values).astype(dtype).tobytes()
    elif kind == "noise" and format_tag == 3:
        payload = (rng.standard_normal(n_values) * 0.3).astype(dtype).tobytes()
    else:
        payload = rng.integers(0, 256, n_values * np.dtype(dtype).itemsize, dtype=np.uint8).tobytes()
    if "payload" in mangled or draw(st.integers(0, 9)) == 0:
        payload = payload[: draw(st.integers(0, len(payload)))]

    block_align = field("block_align", channels * bits // 8, 16)
    fmt = struct.pack(
        "<HHIIHH",
        field("format_tag", format_tag, 16),
        field("channels", channels, 16),
        field("rate", rate, 32),
        field("byte_rate", rate * channels * bits // 8, 32),
        block_align,
        field("bits", bits, 16),
    )
    chunks = b"fmt " + struct.pack("<I", field("fmt_size", len(fmt), 32)) + fmt
    if draw(st.booleans()):  # an unknown chunk before the data
        junk = draw(st.binary(max_size=64))
        junk += b"\0" * (len(junk) % 2)
        chunks += b"LIST" + struct.pack("<I", field("extra_chunk_size", len(junk), 32)) + junk
    chunks += b"data" + struct.pack("<I", field("data_size", len(payload), 32)) + payload
    magic = draw(st.sampled_from([b"RF64", b"RIFX", b"RIFF\0"])) if "header" in mangled else b"RIFF"
    return magic[:4] + struct.pack("<I", field("riff_size", 4 + len(chunks), 32)) + b"WAVE" + chunks


@pytest.fixture(scope="module")
def seeds(clips) -> dict[str, bytes]:
    """Small valid files of three formats to mutate: an MP3 head, a FLAC and a WAV."""
    import soundfile

    mp3 = clips[0].read_bytes()[:48_000]
    samples, rate = soundfile.read(str(clips[0]), frames=22050 * 3, dtype="float32")
    flac, wav = io.BytesIO(), io.BytesIO()
    soundfile.write(flac, samples, rate, format="FLAC")
    soundfile.write(wav, samples, rate, format="WAV", subtype="PCM_16")
    return {".mp3": mp3, ".flac": flac.getvalue(), ".wav": wav.getvalue()}


# --------------------------------------------------------------------------- the tests


@FUZZ_SETTINGS
@given(
    data=st.binary(min_size=0, max_size=8192),
    extension=st.sampled_from([".mp3", ".wav", ".flac", ".ogg", ".aiff", ".opus"]),
)
def test_random_bytes(model, workdir, data, extension):
    check_file(model, write(workdir, "random" + extension, data))


@FUZZ_SETTINGS
@given(data=wav_files())
def test_mangled_wav_headers(model, workdir, data):
    check_file(model, write(workdir, "mangled.wav", data))


@FUZZ_SETTINGS
@given(
    extension=st.sampled_from([".mp3", ".flac", ".wav"]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=40),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_damaged_real_files(model, workdir, seeds, extension, flips, cut):
    data = bytearray(seeds[extension])
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    check_file(model, write(workdir, "damaged" + extension, bytes(data)))
