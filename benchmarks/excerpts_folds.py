"""Query by excerpt out of fold: `benchmarks/excerpts.py`'s question asked of a band
student's cross-validation folds, so that a candidate is checked before it ships.

    python benchmarks/excerpts_folds.py RESULTS/folds/METHOD [RESULTS2/folds/METHOD2 ...] [--data ../shared/data/moods4q]

Each argument is a band-student method's folder in a `qbsd evaluate` results folder, where
every fold saved every clip's window features (`fold<f>.windows.npz`, the student's 500
outputs per 3 s window of the fold's model; the folds themselves in `RESULTS/folds.npy`). Per fold the 4Q heads are refitted on the training clips as
the fold did (`accurate.fit_heads`); a test clip's whole vector is the mean of its windows'
head outputs, as the shipped graph computes it, and its excerpt the mean over its middle
three windows (about 9 s; the shipped benchmark analyses the middle 10 s of audio). Each
excerpt queries all 800 whole vectors of its fold's model by cosine; Hit@k pools the test
clips of the five folds. Only the band half is measured: a blend's statistics half has no
saved excerpt statistics. With two methods, the clips found first by one only and the exact
McNemar p-value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qbsd_cli.training import accurate  # noqa: E402
from qbsd_cli.training.datasets import load_moods4q  # noqa: E402
from qbsd_cli.training.metrics import own_item_ranks  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "moods4q"
EXCERPT_WINDOWS = 3


def excerpt_ranks(method_folder: Path, labels: np.ndarray) -> np.ndarray:
    """Per clip, the rank of its own whole vector among all clips' for its middle excerpt."""
    fold_of = np.load(method_folder.parent.parent / "folds.npy")
    ranks = np.zeros(len(fold_of), dtype=int)
    for fold in np.unique(fold_of):
        saved = np.load(method_folder / f"fold{fold}.windows.npz")
        windows = np.split(saved["features"], np.cumsum(saved["counts"])[:-1])
        train, test = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        heads = accurate.fit_heads(np.stack([windows[i].mean(axis=0) for i in train]), labels[train])
        whole = accurate.song_scores(heads, windows)
        middles = [windows[i][max(0, (len(windows[i]) - EXCERPT_WINDOWS) // 2) :][:EXCERPT_WINDOWS] for i in test]
        excerpts = accurate.song_scores(heads, middles)
        ranks[test] = own_item_ranks(excerpts, whole, test)
    return ranks


def report(method_folders: list[Path], labels: np.ndarray) -> str:
    """A Markdown table of each folder's Hit@1 and Hit@10; with two, the exact McNemar test
    of the excerpts found first by one only."""
    from scipy.stats import binomtest

    lines = ["| band student | Hit@1 | Hit@10 |", "|---|---|---|"]
    first = []
    for folder in method_folders:
        ranks = excerpt_ranks(folder, labels)
        first.append(ranks == 1)
        lines.append(
            f"| {folder.name} ({folder.parent.parent.name}) | {(ranks == 1).mean():.3f} | {(ranks <= 10).mean():.3f} |"
        )
    if len(method_folders) == 2:
        only_a, only_b = int((first[0] & ~first[1]).sum()), int((first[1] & ~first[0]).sum())
        p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
        names = [folder.name for folder in method_folders]
        lines.append(
            f"\nfound first only by {names[0]}: {only_a}; only by {names[1]}: {only_b}; exact McNemar p = {p:.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    songs = load_moods4q(str(args.data))
    print(report(args.methods, songs.labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
