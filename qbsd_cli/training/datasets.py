"""Loaders for labelled song collections: 4Q (moods4q), CAL500 and a plain CSV.

Each returns a `LabelledSongs`: audio paths, a group per song for artist-grouped
splits, the tag vocabulary and a (n_songs, n_tags) 0/1 label matrix.
Tag names are `category:name`, lowercase (`mood:calm`, `genre:pop/rock`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np


@dataclass
class LabelledSongs:
    """Songs with their tags. labels: shape (n_songs, n_tags), uint8."""

    paths: list[str]
    groups: list[str]
    tags: list[str]
    labels: np.ndarray
    description: str

    def subset(self, indices) -> LabelledSongs:
        indices = list(indices)
        return LabelledSongs(
            [self.paths[i] for i in indices],
            [self.groups[i] for i in indices],
            list(self.tags),
            self.labels[indices],
            self.description,
        )

    def keep_tags(self, tag_names: list[str]) -> LabelledSongs:
        columns = [self.tags.index(tag) for tag in tag_names]
        return LabelledSongs(
            list(self.paths), list(self.groups), list(tag_names), self.labels[:, columns], self.description
        )


def _split_tags(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(";") if part.strip()]


def _matrix(song_tags: list[set[str]], vocabulary: list[str]) -> np.ndarray:
    column = {tag: i for i, tag in enumerate(vocabulary)}
    labels = np.zeros((len(song_tags), len(vocabulary)), dtype=np.uint8)
    for row, tags in enumerate(song_tags):
        for tag in tags:
            if tag in column:
                labels[row, column[tag]] = 1
    return labels


def _vocabulary(song_tags: list[set[str]], min_songs: int, always: list[str] = ()) -> list[str]:
    counts: dict[str, int] = {}
    for tags in song_tags:
        for tag in tags:
            counts[tag] = counts.get(tag, 0) + 1
    frequent = sorted(tag for tag, count in counts.items() if count >= min_songs and tag not in always)
    return list(always) + frequent if always else frequent


def load_moods4q(root: str, min_songs: int = 10) -> LabelledSongs:
    """The 4Q layout: `metadata.csv` (latin-1) and `audio/<Song>.mp3`.

    Vocabulary: the four quadrants, then every mood and genre carried by at
    least `min_songs` clips, sorted by name.
    """
    metadata = os.path.join(root, "metadata.csv")
    paths, groups, song_tags = [], [], []
    with open(metadata, encoding="latin-1", newline="") as handle:
        for row in csv.DictReader(handle):
            tags = {f"mood:{mood.lower()}" for mood in _split_tags(row["MoodsStrSplit"])}
            tags |= {f"genre:{genre.lower()}" for genre in _split_tags(row["GenresStr"])}
            tags.add(f"quadrant:{row['Quadrant'].strip().lower()}")
            paths.append(os.path.join(root, "audio", row["Song"] + ".mp3"))
            groups.append(row["Artist"].strip().lower())
            song_tags.append(tags)
    quadrants = [f"quadrant:q{i}" for i in range(1, 5)]
    vocabulary = _vocabulary(song_tags, min_songs, always=quadrants)
    return LabelledSongs(
        paths,
        groups,
        vocabulary,
        _matrix(song_tags, vocabulary),
        f"4Q music-emotion dataset (Panda et al. 2018), {len(paths)} clips, "
        f"AllMusic moods and genres with >= {min_songs} clips, Russell quadrants",
    )


def load_cal500(root: str, audio_dir: str | None = None) -> LabelledSongs:
    """The CAL500 layout: vocab.txt, songNames.txt, hardAnnotations.txt and `<songName>.mp3`.

    CAL500's vocabulary names like `Emotion-Angry_/_Agressive` become
    `emotion:angry_/_agressive`; the `NOT-` tags are kept as they are in the
    annotation matrix (`not-emotion:...`). Each song is its own artist (CAL500
    has 500 songs by 500 artists), so its group is the artist part of the name.
    """
    audio_dir = audio_dir or root
    with open(os.path.join(root, "vocab.txt"), encoding="latin-1") as handle:
        raw_vocabulary = [line.strip() for line in handle if line.strip()]
    with open(os.path.join(root, "songNames.txt"), encoding="latin-1") as handle:
        names = [line.strip() for line in handle if line.strip()]
    labels = np.loadtxt(os.path.join(root, "hardAnnotations.txt"), delimiter=",", dtype=np.float32)
    if labels.shape != (len(names), len(raw_vocabulary)):
        raise ValueError(f"hardAnnotations.txt is {labels.shape}, expected ({len(names)}, {len(raw_vocabulary)})")
    tags = [_cal500_tag(name) for name in raw_vocabulary]
    return LabelledSongs(
        [os.path.join(audio_dir, name + ".mp3") for name in names],
        [name.split("-", 1)[0] for name in names],
        tags,
        (labels > 0).astype(np.uint8),
        f"CAL500, {len(names)} songs",
    )


def _cal500_tag(name: str) -> str:
    negated = name.startswith("NOT-")
    if negated:
        name = name[4:]
    category, _, rest = name.partition("-")
    tag = f"{category.lower()}:{rest.lower()}" if rest else name.lower()
    return "not-" + tag if negated else tag


def load_tag_csv(csv_path: str, min_songs: int = 1) -> LabelledSongs:
    """A CSV with columns `path,tags`, tags separated by `;`, optional `group` column.

    Relative paths are taken relative to the CSV's folder. Tags without a
    `category:` prefix get `tag:`.
    """
    base = os.path.dirname(os.path.abspath(csv_path))
    paths, groups, song_tags = [], [], []
    with open(csv_path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            path = row["path"]
            paths.append(path if os.path.isabs(path) else os.path.join(base, path))
            groups.append(row.get("group") or path)
            song_tags.append({tag.lower() if ":" in tag else f"tag:{tag.lower()}" for tag in _split_tags(row["tags"])})
    vocabulary = _vocabulary(song_tags, min_songs)
    return LabelledSongs(
        paths, groups, vocabulary, _matrix(song_tags, vocabulary), f"{os.path.basename(csv_path)}, {len(paths)} songs"
    )
