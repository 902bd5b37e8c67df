"""Where one job's time goes: `TagModel.analyse` run in this process with timers
wrapped around the stage functions it calls (the real code, monkeypatched).

    python benchmarks/profile_stages.py MODEL.onnx {default|full}[+monofix] FILE...

`+monofix` replaces `audio._to_mono` in this process with a column sum (the same float32
result for stereo), to measure what that one-line change would buy.

Prints one JSON object: seconds per stage, summed over the files, plus process
start-up (imports and model load) and the wall time of the analysis loop.
Stages (exclusive times; nested timers are subtracted from their parent):
  decode      soundfile.SoundFile open/seek/read (libsndfile: mpg123, libFLAC)
  mono        audio._to_mono (channel mean)
  resample    audio.resample (soxr HQ)
  stft        numpy.fft.rfft inside MfccExtractor.mfcc
  mel+dct     the rest of MfccExtractor.mfcc (framing, window, power, mel, log, DCT;
              and the 96-band log-mel of a model that takes bands)
  deltas      MfccExtractor._derivative (delta, delta-delta)
  patches     features.frames_to_patches, or frontends.band_windows (mfcc-bands front end)
  song statistics, band statistics
              features.song_statistics, logmel.band_statistics (a blend's statistics half)
  model       TagModel.patch_outputs and statistics_outputs (onnxruntime)
  other       the loop's wall time minus all of the above
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict

STARTED = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str]) -> int:
    model_path, mode, paths = argv[0], argv[1], argv[2:]
    import numpy as np
    import soundfile

    from qbsd_cli import audio, features, frontends, model

    tag_model = model.TagModel(model_path, threads=1)
    startup = time.perf_counter() - STARTED
    totals: dict[str, float] = defaultdict(float)
    decode_by_format: dict[str, float] = defaultdict(float)
    seconds_by_format: dict[str, float] = defaultdict(float)
    stack: list[list] = []  # [name, start, time of nested timers]
    current_format = [""]

    def timed(name, function):
        def wrapper(*args, **kwargs):
            stack.append([name, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                label, start, nested = stack.pop()
                spent = time.perf_counter() - start
                totals[label] += spent - nested
                if label == "decode":
                    decode_by_format[current_format[0]] += spent - nested
                if stack:
                    stack[-1][2] += spent

        return wrapper

    real_soundfile = soundfile.SoundFile

    class TimedSoundFile(real_soundfile):
        __init__ = timed("decode", real_soundfile.__init__)
        seek = timed("decode", real_soundfile.seek)
        read = timed("decode", real_soundfile.read)

    soundfile.SoundFile = TimedSoundFile
    mode, _, fix = mode.partition("+")

    def column_sum(samples):
        if samples.ndim == 2 and samples.shape[1] > 1:
            mixed = samples[:, 0].astype(np.float32)  # a copy
            for channel in range(1, samples.shape[1]):
                mixed += samples[:, channel]
            return mixed * np.float32(1.0 / samples.shape[1])
        return np.ascontiguousarray(samples.reshape(len(samples), -1)[:, 0], dtype=np.float32)

    to_mono = column_sum if fix == "monofix" else audio._to_mono
    audio._to_mono = timed("mono", to_mono)
    audio.resample = timed("resample", audio.resample)
    np.fft.rfft = timed("stft", np.fft.rfft)
    features.MfccExtractor.mfcc = timed("mel+dct", features.MfccExtractor.mfcc)
    features.MfccExtractor._derivative = timed("deltas", features.MfccExtractor._derivative)
    frontends.frames_to_patches = timed("patches", frontends.frames_to_patches)
    frontends.band_windows = timed("patches", frontends.band_windows)  # the mfcc-bands front end's
    frontends.logmel.band_statistics = timed("band statistics", frontends.logmel.band_statistics)
    model.song_statistics = timed("song statistics", model.song_statistics)
    model.TagModel.patch_outputs = timed("model", model.TagModel.patch_outputs)
    model.TagModel.statistics_outputs = timed("model", model.TagModel.statistics_outputs)

    max_segments = None if mode == "full" else model.DEFAULT_MAX_SEGMENTS
    analysed = 0.0
    loop_started = time.perf_counter()
    for path in paths:
        current_format[0] = os.path.splitext(path)[1].lower().lstrip(".")
        seconds = tag_model.analyse(path, max_segments).duration
        analysed += seconds
        seconds_by_format[current_format[0]] += seconds
    loop = time.perf_counter() - loop_started
    stages = {
        name: totals.get(name, 0.0)
        for name in [
            "decode",
            "mono",
            "resample",
            "stft",
            "mel+dct",
            "deltas",
            "patches",
            "song statistics",
            "band statistics",
            "model",
        ]
    }
    stages["other"] = loop - sum(stages.values())
    print(
        json.dumps(
            {
                "startup": startup,
                "loop": loop,
                "analysed_seconds": analysed,
                "stages": stages,
                "decode_by_format": dict(decode_by_format),
                "seconds_by_format": dict(seconds_by_format),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
