"""Two checkouts side by side in one run: the same retrieval answers, and their speeds.

    git worktree add /tmp/qbsd-before <commit>
    python benchmarks/side_by_side.py --old /tmp/qbsd-before --new . [--songs 200000] [--rounds 3]

A synthetic index of --songs songs (40 clusters of tag vectors, exact copies every 997th
song, artists, albums, titles and lengths) is built once with the OLD checkout's store;
then, in alternating rounds, each checkout answers the same queries in a process of its
own (similar: one seed, several seeds with --not, caps and --explain, words with a seed,
duplicates kept, seeds kept, exact; search with and without seeds; path), and tags
--clips real clips with `qbsd tag --jobs 1`. Prints whether the answers are byte-identical
and the median times and their ratio (new / old). A restructuring that changes no
behaviour shows "identical" and ratios within the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "moods4q" / "audio"

QUERIES = r"""
import json, sys
import numpy as np
from qbsd_cli import Index
from qbsd_cli.api import TagResult
from qbsd_cli.model import ModelInfo
from qbsd_cli.store import IndexStore
folder, out = sys.argv[1], sys.argv[2]
info = ModelInfo.read(None)
paths = [f"/m/artist{i % 300}/album{i % 7}/song{i:07d}.mp3" for i in (1, 2, 1000, 5, 6)]
with IndexStore(folder, create=False) as store:
    vectors = {p: store.vector_for(p) for p in paths}
def seed(p):
    return TagResult(p, 0.0, info.model_id, (), vectors[p])
def listed(matches):
    return [(m.rank, m.path, round(m.score, 6), m.artist, m.album, m.title, m.length,
             [(r.tag, round(r.song, 6), round(r.query, 6)) for r in m.because]) for m in matches]
with Index.open(folder) as index:
    answers = {
        "similar": listed(index.similar(seed(paths[0]), top=20)),
        "similar exact": listed(index.similar(seed(paths[0]), top=20, exact=True)),
        "similar several": listed(index.similar([seed(paths[0]), seed(paths[1])], avoid=[seed(paths[2])], top=15,
                                                per_artist=1, explain=True)),
        "similar words": listed(index.similar(seed(paths[3]), tags=["calm"], top=10, per_album=1)),
        "similar duplicates kept": listed(index.similar(seed(paths[3]), top=10, keep_duplicates=True)),
        "similar seeds kept": listed(index.similar(seed(paths[4]), top=5, include_self=True)),
        "search": listed(index.search("calm piano", top=25, explain=True)),
        "search like": listed(index.search("calm", like=[seed(paths[1])], top=10, per_artist=2)),
        "path": listed(index.path(seed(paths[0]), seed(paths[2]), steps=10, explain=True, per_artist=1)),
    }
json.dump(answers, open(out, "w"))
"""

BUILD = r"""
import sys
import numpy as np
from qbsd_cli.model import ModelInfo
from qbsd_cli.songinfo import SongInfo
from qbsd_cli.store import IndexStore
n, folder = int(sys.argv[1]), sys.argv[2]
info = ModelInfo.read(None)
rng = np.random.default_rng(7)
centres = rng.random((40, len(info.tags))) ** 3
with IndexStore(folder) as store:
    store.bind_model(info.model_id, info.tags)
    with store.transaction():
        for i in range(n):
            vector = np.clip(centres[i % 40] + 0.08 * rng.standard_normal(len(info.tags)), 0, 1).astype(np.float32)
            if i % 997 == 5:
                vector = previous
            previous = vector
            artist = f"artist{i % 300}"
            store.put_song(f"/m/{artist}/album{i % 7}/song{i:07d}.mp3", 1000 + i, i, 30.0, vector,
                           SongInfo(artist, f"album{i % 7}", f"title{i % 500}", 180.0 + (i % 3), tagged=True))
    store.rebuild_annoy()
"""


def run(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="the checkout before")
    parser.add_argument("--new", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--songs", type=int, default=200_000)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qbsd-side-by-side-"))
    clips = [str(clip) for clip in sorted(CLIPS.glob("*.mp3"))[: arguments.clips]]
    (work / "queries.py").write_text(QUERIES)
    (work / "build.py").write_text(BUILD)
    index = work / "index"
    run(arguments.old, [str(work / "build.py"), str(arguments.songs), str(index)])
    times: dict[tuple[str, str], list[float]] = {}
    for round_number in range(arguments.rounds):
        order = [("old", arguments.old), ("new", arguments.new)]
        for name, tree in order if round_number % 2 == 0 else order[::-1]:
            answers = str(work / f"answers-{name}.json")
            times.setdefault(("queries", name), []).append(run(tree, [str(work / "queries.py"), str(index), answers]))
            if clips:
                tag = ["-m", "qbsd_cli", "tag", "--jobs", "1", *clips]
                times.setdefault(("tag", name), []).append(run(tree, tag))
    same = json.loads((work / "answers-old.json").read_text()) == json.loads((work / "answers-new.json").read_text())
    print(f"answers on {arguments.songs:,} songs: {'identical' if same else 'DIFFERENT'}")
    for kind, label in (("queries", "the 9 queries, whole process"), ("tag", f"qbsd tag --jobs 1, {len(clips)} clips")):
        if ("tag" == kind and not clips) or (kind, "old") not in times:
            continue
        old, new = statistics.median(times[(kind, "old")]), statistics.median(times[(kind, "new")])
        print(f"{label}: old {old:.2f} s, new {new:.2f} s (medians of {arguments.rounds}), new/old {new / old:.3f}")


if __name__ == "__main__":
    main()
