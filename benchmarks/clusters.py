"""How well `qbsd cluster` groups songs that belong together, on the 800 clips of the 4Q data.

    python benchmarks/clusters.py [--models fast,accurate,OTHER.onnx] [--counts 4,10,20] [--cache DIR]

Each model's index of the 800 clips (made once with `qbsd index`, kept under --cache) is
clustered by `qbsd cluster --count N`, and the clusters are compared with the clips'
labels: their Russell quadrant and their first AllMusic genre. Beside them, k-means on the
clips' MFCC statistics (the 182 song statistics of qbsd's own MFCC front end, standardised;
scikit-learn's KMeans, 10 starts, seed 0), the usual audio-only baseline. Figures: purity
(the share of clips in their cluster's most common label) and the adjusted Rand index
(0: chance, 1: the labels exactly), both with scikit-learn. Printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data" / "moods4q"
sys.path.insert(0, str(REPO))

from qbsd_cli.model import TagModel  # noqa: E402


def labels() -> dict[str, tuple[str, str]]:
    """clip id -> (quadrant, first genre)."""
    with open(DATA / "metadata.csv", newline="", encoding="latin-1") as handle:
        return {
            row["Song"]: (row["Quadrant"], (row["GenresStr"].split(";")[0].strip() or "none"))
            for row in csv.DictReader(handle)
        }


def qbsd(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qbsd_cli", *args], env=env, capture_output=True, text=True, check=True
    )


def qbsd_clusters(index: Path, count: int) -> dict[str, int]:
    """clip id -> cluster number, from `qbsd cluster --count N --format json`."""
    found = {}
    for line in qbsd("cluster", "--count", str(count), "--format", "json", "--index", str(index)).stdout.splitlines():
        record = json.loads(line)
        for song in record["songs"]:
            found[Path(song["path"]).stem] = record["cluster"]
    return found


def mfcc_statistics(clips: list[Path], cache: Path) -> np.ndarray:
    """(n, 182) MFCC song statistics of the clips, cached."""
    target = cache / "mfcc-statistics.npy"
    if target.exists():
        return np.load(target)
    from qbsd_cli.audio import decode
    from qbsd_cli.features import FeatureParams, MfccExtractor, song_statistics
    from qbsd_cli.training.export import librosa_mel_basis

    params = FeatureParams()
    extractor = MfccExtractor(params, librosa_mel_basis(params))
    rows = [song_statistics(extractor.frames(decode(str(clip), params.sample_rate).samples)) for clip in clips]
    matrix = np.asarray(rows, dtype=np.float64)
    np.save(target, matrix)
    return matrix


def scores(assigned: list[int], truth: list[str]) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(truth, assigned)
    return float(table.max(axis=0).sum() / table.sum()), float(adjusted_rand_score(truth, assigned))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fast,accurate")
    parser.add_argument("--counts", default="4,10,20")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "qbsd" / "cluster-benchmark")
    arguments = parser.parse_args()
    arguments.cache.mkdir(parents=True, exist_ok=True)
    truth = labels()
    clips = sorted((DATA / "audio").glob("*.mp3"))
    clips = [clip for clip in clips if clip.stem in truth]
    counts = [int(count) for count in arguments.counts.split(",")]
    rows = []
    for model in arguments.models.split(","):
        # an index keeps the model it was made with: one index per model id
        index = arguments.cache / f"index-{TagModel(model).model_id}"
        qbsd("index", str(DATA / "audio"), "--model", model, "--index", str(index))
        for count in counts:
            found = qbsd_clusters(index, count)
            ids = [clip.stem for clip in clips if clip.stem in found]
            assigned = [found[i] for i in ids]
            rows.append(
                (
                    f"qbsd cluster, {Path(model).stem} model",
                    count,
                    len(ids),
                    *scores(assigned, [truth[i][0] for i in ids]),
                    *scores(assigned, [truth[i][1] for i in ids]),
                )
            )
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    statistics = StandardScaler().fit_transform(mfcc_statistics(clips, arguments.cache))
    ids = [clip.stem for clip in clips]
    for count in counts:
        assigned = KMeans(count, n_init=10, random_state=0).fit_predict(statistics).tolist()
        rows.append(
            (
                "k-means on MFCC statistics",
                count,
                len(ids),
                *scores(assigned, [truth[i][0] for i in ids]),
                *scores(assigned, [truth[i][1] for i in ids]),
            )
        )
    print("| clustering | clusters | clips | quadrant purity | quadrant ARI | genre purity | genre ARI |")
    print("|---|---|---|---|---|---|---|")
    for name, count, n, q_purity, q_ari, g_purity, g_ari in rows:
        print(f"| {name} | {count} | {n} | {q_purity:.3f} | {q_ari:.3f} | {g_purity:.3f} | {g_ari:.3f} |")
    quadrants = [truth[i][0] for i in ids]
    genres = [truth[i][1] for i in ids]
    print(
        f"\nChance purity: quadrants {max(quadrants.count(q) for q in set(quadrants)) / len(ids):.3f} "
        f"(the largest quadrant's share), genres {max(genres.count(g) for g in set(genres)) / len(ids):.3f}."
    )


if __name__ == "__main__":
    main()
