"""The shipped models side by side: `qbsd tag --jobs 1 --model NAME` on the same real clips,
end to end as a user runs it (a real process: start-up, decoding, front end, network).

    python benchmarks/models.py [--clips 40] [--rounds 3] [--models fast,accurate] [--output benchmarks/MODELS.md]

`--models` takes two or more shipped names or model files (a candidate against the shipped
ones, a shipped model against the one it replaced).

Each round runs every model, in an order that turns from round to round, so a slower moment
of the machine hits them all; the report gives each model's median seconds of audio
analysed per wall-clock second on one core (x realtime) and, within each round, the first
model's speed over each other's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO.parent / "shared" / "data" / "moods4q" / "audio"
MODELS = ("fast", "accurate")


def tag_run(model: str, paths: list[str]) -> tuple[float, float]:
    """(wall seconds, seconds of audio analysed) of one `qbsd tag --jobs 1` run."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "qbsd_cli", "tag", "--jobs", "1", "--model", model, *paths],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall = time.perf_counter() - started
    return wall, sum(json.loads(line)["duration"] for line in completed.stdout.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS), help="two or more shipped model names or ONNX files")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "MODELS.md")
    args = parser.parse_args()
    models = tuple(args.models.split(","))
    if len(models) < 2:
        sys.exit("--models takes two or more models")
    paths = sorted(str(path) for path in CLIPS.glob("*.mp3"))[: args.clips]
    if not paths:
        sys.exit(f"no clips in {CLIPS}")
    tag_run(models[0], paths[:2])  # warm the page cache and Python's imports
    speeds: dict[str, list[float]] = {model: [] for model in models}
    for round_number in range(args.rounds):
        turn = round_number % len(models)
        for model in models[turn:] + models[:turn]:
            wall, audio = tag_run(model, paths)
            speeds[model].append(audio / wall)
            print(f"round {round_number + 1}: {model} {audio / wall:.0f}x realtime ({wall:.1f} s)", flush=True)
    lines = [
        "# The shipped models side by side",
        "",
        f"Measured by `python benchmarks/models.py --clips {args.clips} --rounds {args.rounds} "
        f"--models {args.models}` "
        f"(its docstring says how): `qbsd tag --jobs 1` on {len(paths)} clips of 30 s, one core.",
        "",
        "| model | x realtime per core (median of rounds) | rounds |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {statistics.median(v):.0f} | {', '.join(f'{s:.0f}' for s in v)} |" for m, v in speeds.items()]
    lines.append("")
    for other in models[1:]:
        ratios = [first / second for first, second in zip(speeds[models[0]], speeds[other])]
        lines.append(
            f"{models[0]} / {other}, within each round: median {statistics.median(ratios):.2f}x "
            f"({', '.join(f'{r:.2f}' for r in ratios)})"
        )
    lines.append("")
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
