"""Query by excerpt: a 10 s excerpt of each of the 800 4Q clips queries all 800 whole clips by
cosine; how often is its own clip first (Hit@1) or in the top 10 (Hit@10)?

    python benchmarks/excerpts.py [--models fast,accurate] [--jobs 2] [--output benchmarks/EXCERPTS.md]

Each model is the shipped file, trained on all 800 clips: the labels it learnt are those of
the clips queried here, but retrieval uses no label, only how stable a clip's vector is
when a third of it is heard. The excerpt is the middle 10 s of the clip, analysed as a
piece of its own (`TagModel.vector_from_samples`); the whole clip is analysed as `qbsd tag`
does. Vectors are cached per model in the output's folder, so a rerun only reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qbsd_cli.audio import decode  # noqa: E402
from qbsd_cli.model import TagModel  # noqa: E402
from qbsd_cli.training.metrics import own_item_ranks  # noqa: E402

CLIPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "moods4q" / "audio"
EXCERPT_SECONDS = 10.0

_model = None


def _vectors(job) -> tuple[np.ndarray, np.ndarray]:
    """(whole-clip vector, excerpt vector) of one clip, in a worker with its own model."""
    global _model
    model_name, path = job
    if _model is None:
        _model = TagModel(model_name)
    whole = _model.analyse(path).vector
    samples = decode(path, _model.front_end.sample_rate).samples
    rate = _model.front_end.sample_rate
    length = int(EXCERPT_SECONDS * rate)
    start = max(0, (len(samples) - length) // 2)  # the middle 10 s (a shorter clip: all of it)
    excerpt = _model.vector_from_samples(samples[start : start + length])
    return whole, excerpt


def hits(whole: np.ndarray, excerpts: np.ndarray, ks=(1, 10)) -> dict[int, float]:
    """Share of excerpts whose own clip is among the k most cosine-similar whole clips."""
    rank = own_item_ranks(excerpts, whole, np.arange(len(excerpts)))
    return {k: float((rank <= k).mean()) for k in ks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fast,accurate")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "EXCERPTS.md")
    args = parser.parse_args()
    paths = sorted(str(path) for path in CLIPS.glob("*.mp3"))
    if not paths:
        sys.exit(f"no clips in {CLIPS}")
    rows = []
    for name in args.models.split(","):
        model = TagModel(name)
        cache = args.output.parent / f".excerpts-{model.model_id}.npz"
        started = time.time()
        if cache.exists():
            with np.load(cache) as data:
                whole, excerpts = data["whole"], data["excerpts"]
        else:
            with ProcessPoolExecutor(args.jobs) as pool:
                pairs = list(pool.map(_vectors, [(name, path) for path in paths], chunksize=8))
            whole, excerpts = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
            np.savez(cache, whole=whole, excerpts=excerpts)
        found = hits(whole, excerpts)
        rows.append((name, model.model_id, found[1], found[10]))
        print(
            f"{name} ({model.model_id}): Hit@1 {found[1]:.3f}, Hit@10 {found[10]:.3f} ({time.time() - started:.0f} s)",
            flush=True,
        )
    with open(args.output, "w") as handle:
        handle.write(
            f"# Query by excerpt\n\nMeasured by `python benchmarks/excerpts.py --models {args.models}` "
            f"(its docstring says how): {len(paths)} clips, the middle {EXCERPT_SECONDS:g} s of each "
            "querying all whole clips by cosine.\n\n| model | id | Hit@1 | Hit@10 |\n|---|---|---|---|\n"
        )
        for name, model_id, hit1, hit10 in rows:
            handle.write(f"| {name} | {model_id} | {hit1:.3f} | {hit10:.3f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
