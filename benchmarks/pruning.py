"""The musicnn teachers with and without their dead filters (qbsd_cli/training/pruning.py),
side by side on the same real patches: how far their outputs move, and how much faster.

    python benchmarks/pruning.py [--clips 20] [--rounds 3] [--near-zero 1e-3,1e-2] [--output benchmarks/PRUNING.md]

Every 800/N-th 4Q clip (name order) is decoded at 16 kHz and cut into the teachers' 3 s
log-mel patches (qbsd_cli.logmel, as at run time). Each teacher runs in onnxruntime on one
thread, in batches of 10 patches (one 30 s segment, as `qbsd tag` does), unpruned and
pruned at each threshold; rounds alternate the order, and the report gives, per teacher
and threshold, the filters kept, the largest and mean absolute change of its
probabilities and penultimate layer, and the median speed ratio over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qbsd_cli import logmel  # noqa: E402
from qbsd_cli.audio import decode  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO.parent / "shared" / "data" / "moods4q" / "audio"
TEACHERS = ("MTT_musicnn", "MSD_musicnn")
OUTPUTS = ("probabilities", "penultimate")


def session(model):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(teacher, patches: np.ndarray) -> list[np.ndarray]:
    parts = [teacher.run(list(OUTPUTS), {"melspec": patches[i : i + 10]}) for i in range(0, len(patches), 10)]
    return [np.concatenate([part[k] for part in parts]) for k in range(len(OUTPUTS))]


def timed(teacher, patches: np.ndarray) -> float:
    started = time.perf_counter()
    run(teacher, patches)
    return time.perf_counter() - started


def main() -> int:
    import onnx

    from qbsd_cli.training.pruning import prune_dead_filters

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--near-zero", default="1e-3,1e-2", help="comma-separated thresholds")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "PRUNING.md")
    args = parser.parse_args()
    paths = sorted(CLIPS.glob("*.mp3"))
    if not paths:
        sys.exit(f"no clips in {CLIPS}")
    paths = paths[:: max(1, len(paths) // args.clips)][: args.clips]
    patches = np.concatenate([logmel.patches(logmel.log_mel(decode(str(p), 16000).samples)) for p in paths])
    patches = patches.astype(np.float32)
    thresholds = [float(value) for value in args.near_zero.split(",")]
    lines = [
        "# The teachers without their dead filters",
        "",
        f"Measured by `python benchmarks/pruning.py --clips {args.clips} --rounds {args.rounds} "
        f"--near-zero {args.near_zero}` (its docstring says how): {len(patches)} patches of "
        f"{len(paths)} clips, one thread.",
        "",
        "| teacher | near zero | filters kept | probabilities: max / mean change | "
        "penultimate: max / mean change | speed-up (median; rounds) |",
        "|---|---|---|---|---|---|",
    ]
    for name in TEACHERS:
        model = onnx.load(str(REPO / "models" / "teacher" / f"{name}.onnx"))
        unpruned = session(model)
        reference = run(unpruned, patches)
        for threshold in thresholds:
            pruned_model, layers = prune_dead_filters(model, threshold)
            pruned = session(pruned_model)
            changes = [np.abs(after - before) for before, after in zip(reference, run(pruned, patches))]
            ratios = []
            for round_number in range(args.rounds):
                order = (unpruned, pruned) if round_number % 2 == 0 else (pruned, unpruned)
                seconds = dict(zip((id(order[0]), id(order[1])), (timed(order[0], patches), timed(order[1], patches))))
                ratios.append(seconds[id(unpruned)] / seconds[id(pruned)])
            kept = sum(layer.kept for layer in layers)
            total = sum(layer.filters for layer in layers)
            row = (
                f"| {name} | {threshold:g} | {kept} of {total} (in {len(layers)} layers) | "
                + " | ".join(f"{change.max():.1e} / {change.mean():.1e}" for change in changes)
                + f" | {statistics.median(ratios):.2f}x ({', '.join(f'{r:.2f}' for r in ratios)}) |"
            )
            print(row, flush=True)
            lines.append(row)
    lines.append("")
    args.output.write_text("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
