"""How much of a song must qbsd analyse? Measures what analysing less costs in agreement.

Two measurements with the shipped model (or $QBSD_MODEL), on ../shared/data/moods4q:
1. On the 30 s clips: the vector from the first L seconds against the vector from the
   whole clip (cosine, and overlap of the 10 strongest tags), for several L.
2. On long "songs" made by concatenating 8 clips (4 minutes, every 30 s a different
   piece of music, a worst case for excerpts): the vector from K evenly spread 30 s
   segments against the vector from all 8, with the time each takes.

Run: python benchmarks/segments.py [--songs 60] > benchmarks/SEGMENTS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import soundfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from qbsd_cli.audio import decode  # noqa: E402
from qbsd_cli.model import TagModel  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "moods4q", "audio")


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def top_overlap(a, b, k=10):
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--songs", type=int, default=60)
    parser.add_argument("--clips", type=int, default=200)
    args = parser.parse_args()
    model = TagModel()
    clips = sorted(os.path.join(DATA, name) for name in os.listdir(DATA))
    rng = np.random.default_rng(0)
    rate = model.params.sample_rate

    print(f"model `{model.model_id}`\n")
    print("## 1. Part of a 30 s clip against the whole clip\n")
    print("| seconds analysed | mean cosine | mean top-10 tag overlap |")
    print("|---|---|---|")
    chosen = rng.choice(len(clips), args.clips, replace=False)
    samples = [decode(clips[i], rate).samples for i in chosen]
    full = [model.vector_from_samples(s) for s in samples]
    for seconds in (2.5, 5, 10, 15, 20):
        cut = [model.vector_from_samples(s[: int(seconds * rate)]) for s in samples]
        print(
            f"| {seconds} | {np.mean([cosine(a, b) for a, b in zip(cut, full)]):.4f} "
            f"| {np.mean([top_overlap(a, b) for a, b in zip(cut, full)]):.3f} |"
        )

    print("\n## 2. K of the 8 segments of a 4-minute concatenation against all 8\n")
    with tempfile.TemporaryDirectory() as folder:
        songs = []
        for n in range(args.songs):
            parts = [decode(clips[i], rate).samples for i in rng.choice(len(clips), 8, replace=False)]
            # each clip padded/cut to exactly 30 s so that segment boundaries fall between clips
            parts = [np.resize(p, 30 * rate) for p in parts]
            path = os.path.join(folder, f"song{n}.flac")
            soundfile.write(path, np.concatenate(parts), rate)
            songs.append(path)
        reference = {}
        started = time.perf_counter()
        for path in songs:
            reference[path] = model.analyse(path, None).vector
        full_seconds = time.perf_counter() - started
        print(
            "| segments analysed (of 8) | seconds analysed | mean cosine | mean top-10 tag overlap | time per song (s) |"
        )
        print("|---|---|---|---|---|")
        for k in (1, 2, 3, 4, 6):
            started = time.perf_counter()
            vectors = {path: model.analyse(path, k).vector for path in songs}
            spent = (time.perf_counter() - started) / len(songs)
            print(
                f"| {k} | {30 * k} | {np.mean([cosine(vectors[p], reference[p]) for p in songs]):.4f} "
                f"| {np.mean([top_overlap(vectors[p], reference[p]) for p in songs]):.3f} | {spent:.3f} |"
            )
        print(f"| 8 (all) | 240 | 1 | 1 | {full_seconds / len(songs):.3f} |")


if __name__ == "__main__":
    main()
