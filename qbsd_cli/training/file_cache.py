"""Names of per-audio-file cache entries (features, teacher outputs), by the file's content.

A name made of the file's path, size and mtime was recomputed whenever the data were
re-mounted with new mtimes (the 800 clips come back that way every session: 14 minutes of
teacher outputs lost each time); the bytes of the file are what the cached values depend
on, and hashing them costs a few milliseconds per file against seconds of decoding.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache


@cache
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def content_key(path: str) -> str:
    """20 hex digits naming the bytes of the file at `path` (read once per process and
    file version)."""
    info = os.stat(path)
    return _content_digest(os.path.abspath(path), info.st_size, info.st_mtime_ns)


def entry_path(folder: str, path: str, suffix: str, legacy_stem: str | None = None) -> str:
    """`folder`/<content_key><suffix>; an entry under the older path+size+mtime name
    `legacy_stem` is renamed to it (the same file, same bytes), so no cache is recomputed."""
    target = os.path.join(folder, "c" + content_key(path) + suffix)
    if legacy_stem and not os.path.exists(target):
        legacy = os.path.join(folder, legacy_stem + suffix)
        try:
            os.replace(legacy, target)
        except FileNotFoundError:  # none, or another process renamed it first
            pass
        except OSError:  # a read-only cache: read the entry where it is
            return legacy if os.path.exists(legacy) else target
    return target
