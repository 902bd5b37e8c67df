"""The naive reference that `qbsd tag` is compared with, run as its own process.

    python benchmarks/naive.py MODEL.onnx FILE...

For each file: `librosa.load(path, sr=22050)` (whole file, mono, librosa's default
soxr resampler), `librosa.feature.mfcc` (13 coefficients, n_fft 512, hop 256,
40 mels) with `librosa.feature.delta` (width 9) and delta-delta, the same
195x10 patches as `qbsd_cli.features.frames_to_patches`, and one onnxruntime call
per patch; the song vector is the mean of the patch outputs. For a model whose patches
are band windows (`qbsd.front_end` mfcc-bands), also `librosa.feature.melspectrogram`
(96 Slaney bands over 0-11,025 Hz, the same STFT settings), log10(10000 m + 1), cut into
the (258, 96) windows of `qbsd_cli.frontends.band_windows`, one call per window (the MFCC
still computed, as the model's statistics half needs it). Like `qbsd tag
--jobs 1` it uses one core: one onnxruntime thread (BLAS threads are limited by
the caller's environment). Prints one JSON line per file on stdout, and on stderr
a JSON summary with the time spent importing and per stage.
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()


def main(argv: list[str]) -> int:
    model_path, paths = argv[0], argv[1:]
    import librosa
    import numpy as np
    import onnxruntime

    sys.path.insert(0, __file__.rsplit("/", 2)[0])  # this checkout, for FeatureParams
    from qbsd_cli.features import FeatureParams, frames_to_patches
    from qbsd_cli.frontends import MFCC_BANDS, band_windows

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    params = FeatureParams.from_json(metadata["qbsd.feature_params"])
    windowed = metadata.get("qbsd.front_end") == MFCC_BANDS
    name = session.get_inputs()[0].name
    stages = {
        "import+model load": time.perf_counter() - STARTED,
        "load (decode+resample)": 0.0,
        "mfcc+deltas": 0.0,
        "model (one call per patch)": 0.0,
    }
    seconds = 0.0
    for path in paths:
        t0 = time.perf_counter()
        samples, rate = librosa.load(path, sr=params.sample_rate)
        t1 = time.perf_counter()
        mfcc = librosa.feature.mfcc(
            y=samples,
            sr=rate,
            n_mfcc=params.n_mfcc,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            n_mels=params.n_mels,
        )
        frames = np.concatenate(
            [
                mfcc,
                librosa.feature.delta(mfcc, width=params.delta_width),
                librosa.feature.delta(mfcc, width=params.delta_width, order=2),
            ]
        ).T
        patches = frames_to_patches(np.ascontiguousarray(frames, dtype=np.float32), params)
        if windowed:
            mel = librosa.feature.melspectrogram(
                y=samples,
                sr=rate,
                n_fft=params.n_fft,
                hop_length=params.hop_length,
                n_mels=96,
                fmax=rate / 2,
                pad_mode="constant",
            )
            patches = band_windows(np.log10(10000.0 * mel.T + 1.0).astype(np.float32))
        t2 = time.perf_counter()
        outputs = [session.run(None, {name: patch[None]})[0][0] for patch in patches]
        vector = np.mean(outputs, axis=0)
        t3 = time.perf_counter()
        stages["load (decode+resample)"] += t1 - t0
        stages["mfcc+deltas"] += t2 - t1
        stages["model (one call per patch)"] += t3 - t2
        seconds += len(samples) / rate
        print(
            json.dumps(
                {
                    "path": path,
                    "duration": round(len(samples) / rate, 3),
                    "vector": [round(float(v), 6) for v in vector],
                }
            )
        )
    stages["total"] = time.perf_counter() - STARTED
    sys.stderr.write(json.dumps({"stages": stages, "seconds": seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
