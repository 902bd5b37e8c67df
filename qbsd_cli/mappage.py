"""The page of `qbsd map`: one self-contained HTML file (inline CSS and JS, no network at
view time) drawing every song of a mapping.MapLayout as a point on a <canvas>.

The songs travel as one JSON document in a `<script type="application/json">` element:
every title, artist, album and path shown in the page is first made safe by
`display.shown` (control characters visible, long fields cut), and the JSON escapes `<`,
`>`, `&` and U+2028/U+2029 as `\\u003c`..., so no tag can close the element or start
markup; the page's script puts text into the page only as text (`textContent`), never as
HTML. Tag scores travel as bytes (0..255 per song and tag) and coordinates as 16-bit
integers, base64-encoded: about 350 bytes a song with 261 tags.
"""

from __future__ import annotations

import base64
import json
import os
from importlib import resources

import numpy as np

from .display import shown, shown_path
from .mapping import QUADRANT_MOODS, QUADRANT_TAGS, MapLayout
from .output import m3u_location

#: The page's stylesheet and script, package data next to this module.
STYLE = "map_page.css"
SCRIPT = "map_page.js"

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: object) -> str:
    """`data` as JSON that is safe inside a <script> element (no `<`, `>`, `&`, U+2028 or
    U+2029 left as such: `</script>` or `<!--` cannot appear)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def _coordinates(points: np.ndarray | None) -> str | None:
    """(n, 2) points scaled to 0..65535 on each axis (the axes keep their directions),
    as base64 of little-endian uint16 x, y pairs; None stays None."""
    if points is None:
        return None
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = np.rint((points - low) / span * 65535).astype("<u2")
    return base64.b64encode(scaled.tobytes()).decode("ascii")


def _mood_range(points: np.ndarray | None) -> list[float] | None:
    if points is None:
        return None
    return [float(points[:, 0].min()), float(points[:, 0].max()), float(points[:, 1].min()), float(points[:, 1].max())]


def page_data(layout: MapLayout) -> dict:
    """What the page's script reads: names made safe for showing, places and scores."""
    artists, albums, titles, lengths, shown_paths = [], [], [], [], []
    locations: dict[str, str] = {}
    for number, (path, info) in enumerate(zip(layout.paths, layout.infos)):
        shown_paths.append(shown_path(path))
        artists.append(shown(info.artist) if info is not None and info.artist else "")
        albums.append(shown(info.album) if info is not None and info.album else "")
        title = info.title if info is not None and info.title else os.path.basename(path)
        titles.append(shown(title))
        lengths.append(round(info.seconds) if info is not None and info.seconds else -1)
        location = m3u_location(path)
        if location != shown_paths[-1]:
            locations[str(number)] = location
    scores = np.rint(np.clip(layout.scores, 0.0, 1.0) * 255).astype(np.uint8)
    return {
        "count": len(layout.paths),
        "tags": [shown(tag) for tag in layout.tags],
        "quadrants": [layout.tags.index(tag) for tag in QUADRANT_TAGS] if layout.mood is not None else None,
        "moods": list(QUADRANT_MOODS),
        "method": layout.method,
        "mood": _coordinates(layout.mood),
        "moodRange": _mood_range(layout.mood),
        "vector": _coordinates(layout.vector),
        "scores": base64.b64encode(scores.tobytes()).decode("ascii"),
        "path": shown_paths,
        "location": locations,
        "artist": artists,
        "album": albums,
        "title": titles,
        "length": lengths,
    }


def render(layout: MapLayout) -> str:
    """The whole HTML page of `layout`."""
    package = resources.files("qbsd_cli")
    style = package.joinpath(STYLE).read_text(encoding="utf-8")
    script = package.joinpath(SCRIPT).read_text(encoding="utf-8")
    count = len(layout.paths)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>qbsd map: {count:,} songs</title>\n<style>\n{style}</style>\n</head>\n<body>\n"
        '<div id="bar">\n'
        '<label>view <select id="view"><option value="mood">mood plane</option>'
        '<option value="vector">whole vector</option></select></label>\n'
        '<label>colour <select id="colour"><option value="quadrant">quadrant</option></select></label>\n'
        '<label>size <select id="size"><option value="">same</option></select></label>\n'
        '<label>search <input id="search" type="search" placeholder="e.g. calm piano" size="18"></label>\n'
        '<span id="status"></span>\n</div>\n'
        '<div id="main"><canvas id="map"></canvas><div id="tip" hidden></div>\n'
        '<aside id="side"><div id="legend"></div>'
        '<p id="help">Drag to pan, wheel to zoom, shift-drag to select songs.</p>'
        '<div id="selection" hidden><p id="selcount"></p><p id="selshares"></p>'
        '<button id="download" type="button">download m3u</button><ol id="sellist"></ol></div></aside></div>\n'
        f'<script type="application/json" id="qbsd-data">{script_json(page_data(layout))}</script>\n'
        f"<script>\n{script}</script>\n</body>\n</html>\n"
    )
