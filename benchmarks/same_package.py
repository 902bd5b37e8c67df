"""Same-package precision@10 on the unlabelled corpus (issue 20, item 6): each music file of
the corpus (training/corpus.py's Debian game packages) queries every other corpus file by
cosine of song vectors; which share of its ten nearest come from the same package (the
same game's soundtrack, one "album")?

    python benchmarks/same_package.py [--models fast,accurate] [--jobs 2] [--output benchmarks/SAME_PACKAGE.md]

Rows: each model's song vector as `qbsd tag` computes it at default settings (the first
four 30 s segments), the MSD musicnn embedding (the penultimate layer, 200-d, averaged over
the 3 s patches of the same four segments; AudioMuse-AI's way of ranking) and the MTT one,
from the teacher outputs cached by training (accurate.teacher_outputs), and chance. A file
queries only if its package holds another file. No model saw a package label: the corpus
is unlabelled music the students regress the teachers on, so this measures how much of a
game's style the vectors keep, not what they were taught. Vectors are cached per model in
the output's folder, so a rerun only reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qbsd_cli.model import TagModel  # noqa: E402
from qbsd_cli.settings import DEFAULT_MAX_SEGMENTS  # noqa: E402

_model = None


def _vector(job) -> np.ndarray:
    """A file's song vector at default settings, in a worker with its own model."""
    global _model
    model_name, path = job
    if _model is None:
        _model = TagModel(model_name)
    return _model.analyse(path).vector


def same_package_precision(vectors: np.ndarray, packages: np.ndarray, k: int = 10) -> tuple[float, int]:
    """(mean share of the k nearest other files, by cosine, from the query's package; number
    of queries): every file whose package holds another file queries all the others."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    sizes = {package: int((packages == package).sum()) for package in set(packages)}
    queries = np.array([sizes[package] > 1 for package in packages])
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    shares = (packages[nearest] == packages[:, None]).mean(axis=1)
    return float(shares[queries].mean()), int(queries.sum())


def chance(packages: np.ndarray) -> float:
    """The expected share for a random ranking: (package size - 1) / (files - 1) per query."""
    sizes = {package: int((packages == package).sum()) for package in set(packages)}
    shares = [(sizes[p] - 1) / (len(packages) - 1) for p in packages if sizes[p] > 1]
    return float(np.mean(shares))


def teacher_embeddings(paths: list[str], teacher: str) -> np.ndarray:
    """(files, 200): the teacher's penultimate layer averaged over the patches of the first
    DEFAULT_MAX_SEGMENTS segments, from training's cache of teacher outputs."""
    from qbsd_cli.training import accurate

    outputs = accurate.teacher_outputs(paths, accurate.teacher_cache(None), log=lambda *_: None)
    rows = []
    for value in outputs:
        keep = value["segment"] < DEFAULT_MAX_SEGMENTS
        rows.append(value[f"{teacher}/penultimate"][keep].mean(axis=0))
    return np.stack(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fast,accurate", help="comma-separated shipped model names or ONNX files")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "SAME_PACKAGE.md")
    args = parser.parse_args()
    from qbsd_cli.training.corpus import DEFAULT_CACHE

    manifest = Path(DEFAULT_CACHE) / "manifest.json"
    if not manifest.exists():
        sys.exit(f"no corpus in {DEFAULT_CACHE}: run `python -m qbsd_cli.training.corpus fetch` first")
    entries = [entry for entry in json.loads(manifest.read_text())["files"] if entry["decodable"]]
    paths = [entry["path"] for entry in entries]
    packages = np.array([entry["package"] for entry in entries])
    rows = []
    for name in args.models.split(","):
        model = TagModel(name)
        cache = args.output.parent / f".same-package-{model.model_id}.npy"
        started = time.time()
        if cache.exists():
            vectors = np.load(cache)
        else:
            with ProcessPoolExecutor(args.jobs) as pool:
                vectors = np.stack(list(pool.map(_vector, [(name, path) for path in paths], chunksize=4)))
            np.save(cache, vectors)
        precision, queries = same_package_precision(vectors, packages)
        rows.append((f"{name} (`{model.model_id}`)", precision))
        print(f"{name} ({model.model_id}): same-package P@10 {precision:.3f} ({time.time() - started:.0f} s)")
    for teacher in ("MSD_musicnn", "MTT_musicnn"):
        precision, queries = same_package_precision(teacher_embeddings(paths, teacher), packages)
        rows.append((f"{teacher} embedding cosine (200-d penultimate layer, mean over patches)", precision))
        print(f"{teacher} embedding: same-package P@10 {precision:.3f}")
    rows.append(("chance", chance(packages)))
    with open(args.output, "w") as handle:
        handle.write(
            "# Same-package precision@10 on the corpus\n\nMeasured by `python benchmarks/same_package.py "
            f"--models {args.models}` (its docstring says how): {len(paths)} files of "
            f"{len(set(packages))} packages, {queries} of them querying (their package holds another file).\n\n"
            "| ranking | same-package P@10 |\n|---|---|\n"
        )
        for name, precision in rows:
            handle.write(f"| {name} | {precision:.3f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
