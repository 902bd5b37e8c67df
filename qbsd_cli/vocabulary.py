"""Words to tag columns: how `search` (and the library's `Index.search`) reads a description."""

from __future__ import annotations

import difflib

from .errors import UnknownTagError


def resolve_words(words: list[str], tags: list[str]) -> list[int]:
    """Tag columns (indices into `tags`, sorted) named by `words`: a full name (`mood:calm`)
    or a bare name (`calm`) matching that name in any category; consecutive words may
    form one name (`easy listening`). An unknown word raises UnknownTagError with the
    nearest tag names as suggestions."""
    by_full = {tag.lower(): i for i, tag in enumerate(tags)}
    by_name: dict[str, list[int]] = {}
    for i, tag in enumerate(tags):
        by_name.setdefault(tag.split(":", 1)[-1].lower(), []).append(i)
    columns: list[int] = []
    words = [w.strip().lower() for w in words if w.strip()]
    position = 0
    while position < len(words):
        for end in range(len(words), position, -1):  # longest run of words that names a tag
            phrase = " ".join(words[position:end])
            if phrase in by_full:
                columns.append(by_full[phrase])
                break
            if phrase in by_name:
                columns.extend(by_name[phrase])
                break
        else:
            word = words[position]
            names = sorted(set(by_full) | set(by_name))
            close = difflib.get_close_matches(word, names, n=5, cutoff=0.6)
            close += [name for name in names if word in name and name not in close][: 5 - len(close)]
            raise UnknownTagError(word, close)
        position = end
    return sorted(set(columns))
