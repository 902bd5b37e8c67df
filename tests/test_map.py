"""`qbsd map`: the layout (numpy), the page's safety (no tag can inject script), and the
page itself in a real browser: Debian's headless Chromium driven by selenium (skipped,
saying why, where either is missing)."""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from qbsd_cli.display import shown, shown_path
from qbsd_cli.mappage import script_json
from qbsd_cli.mapping import QUADRANT_TAGS, mood_plane, pca, tsne
from qbsd_cli.songinfo import SongInfo
from qbsd_cli.store import IndexStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = "</script><script>window.pwned=1</script><img src=x onerror=window.pwned=2><!--\u2028\u2029&amp;"
TAGS = [*QUADRANT_TAGS, "mood:calm", "mood:happy", "instrument:piano", "style:rock"]


# --------------------------------------------------------------------------- helpers


def synthetic_index(folder: Path, count: int, tags: list[str] = TAGS, hostile: bool = False) -> None:
    """An index of `count` made-up songs in clusters (as benchmarks/ builds them)."""
    rng = np.random.default_rng(7)
    centres = rng.random((40, len(tags))) ** 3
    with IndexStore(folder) as store:
        store.bind_model("synthetic", tags)
        with store.transaction():
            for i in range(count):
                vector = np.clip(centres[i % 40] + 0.08 * rng.standard_normal(len(tags)), 0, 1).astype(np.float32)
                name = f"{HOSTILE}{i}" if hostile else f"title{i}"
                info = SongInfo(f"artist{i % 300}" if not hostile else HOSTILE, f"album{i % 7}", name, 180.0, True)
                path = f"/m/{HOSTILE if hostile else 'artist'}/song{i:07d}.mp3"
                store.put_song(path, 1000 + i, i, 30.0, vector, info)
        store.rebuild_annoy()


def catalogue(index: Path) -> tuple[list[str], np.ndarray, list[str]]:
    with IndexStore(index, create=False, read_only=True) as store:
        paths, matrix, _units, _infos = store.catalogue()
        return list(paths), np.array(matrix), list(store.tags or [])


def make_map(qbsd, index: Path, folder: Path) -> Path:
    page = folder / "map.html"
    result = qbsd("map", "--output", page, index=index)
    assert result.returncode == 0, result
    return page


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's chromium and chromium-driver) driven by selenium."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.skip("no chromium or chromedriver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="qbsd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(300)
    driver.set_script_timeout(120)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def load(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    for _ in range(600):
        if driver.execute_script("return !!(window.qbsdMap && window.qbsdMap.firstPaint !== null)"):
            return
        time.sleep(0.1)
    raise AssertionError("the page never painted")


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def requests(driver) -> list[str]:
    """Every resource the page fetched (data: URLs need no network)."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if not name.startswith("data:")]


def points(driver) -> list[tuple[float, float]]:
    found = driver.execute_script("return Array.from({length: qbsdMap.songs()}, (_, i) => qbsdMap.point(i))")
    return [(p["x"], p["y"]) for p in found]


def isolated(spots: list[tuple[float, float]], room: float = 12.0) -> int:
    """A point with no other within `room` pixels."""
    for i, (x, y) in enumerate(spots):
        if all(math.dist((x, y), other) > room for j, other in enumerate(spots) if j != i):
            return i
    raise AssertionError("no isolated point")


def shift_drag(driver, start: tuple[float, float], end: tuple[float, float]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    chain = ActionChains(driver)
    chain.key_down(Keys.SHIFT)
    for step in ("move0", "down", "move1", "up"):
        pointer = chain.w3c_actions.pointer_action
        if step == "move0":
            pointer.move_to_location(int(start[0]), int(start[1]))
        elif step == "down":
            pointer.pointer_down()
        elif step == "move1":
            pointer.move_to_location(int(end[0]), int(end[1]))
        else:
            pointer.pointer_up()
        chain.w3c_actions.key_action.pause()
    chain.key_up(Keys.SHIFT)
    chain.perform()


def hover(driver, spot: tuple[float, float]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    chain.w3c_actions.pointer_action.move_to_location(int(spot[0]), int(spot[1]))
    chain.perform()


# --------------------------------------------------------------------------- layout and safety


def test_mood_plane_is_valence_and_arousal_of_the_quadrants():
    scores = np.zeros((4, len(TAGS)), dtype=np.float32)
    scores[np.arange(4), np.arange(4)] = 1.0  # one song wholly in each quadrant
    plane = mood_plane(scores, TAGS)
    assert plane is not None
    assert plane.tolist() == [[1, 1], [-1, 1], [-1, -1], [1, -1]]
    assert mood_plane(scores[:, 4:], TAGS[4:]) is None


def test_layouts_are_deterministic_and_keep_neighbours():
    rng = np.random.default_rng(1)
    centres = rng.random((6, 30))
    labels = np.arange(300) % 6
    scores = np.clip(centres[labels] + 0.05 * rng.standard_normal((300, 30)), 0, 1)
    for method in (pca, tsne):
        placed = method(scores)
        assert placed.shape == (300, 2)
        assert np.array_equal(placed, method(scores))
    placed = tsne(scores)
    distances = ((placed[:, None] - placed[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).mean() > 0.95


def test_script_json_cannot_close_the_script_element():
    text = script_json({"title": HOSTILE})
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == {"title": HOSTILE}


def test_map_of_an_empty_or_missing_index_is_one_line_and_an_exit_status(qbsd, tmp_path):
    result = qbsd("map", index=tmp_path / "nowhere")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result
    assert "Traceback" not in result.stderr
    with IndexStore(tmp_path / "empty") as store:
        store.bind_model("synthetic", TAGS)
    result = qbsd("map", index=tmp_path / "empty")
    assert result.returncode != 0 and "no songs" in result.stderr, result


def test_hostile_names_are_shown_safely_in_the_html(qbsd, tmp_path):
    synthetic_index(tmp_path / "index", 20, [*TAGS, f"mood:{HOSTILE}"], hostile=True)
    html = make_map(qbsd, tmp_path / "index", tmp_path).read_text(encoding="utf-8")
    data = html.split('<script type="application/json" id="qbsd-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "\u2028" not in data
    decoded = json.loads(data)
    assert decoded["title"][0] == shown(f"{HOSTILE}0")  # U+2028/9 made visible escapes by shown
    assert decoded["artist"][0] == shown(HOSTILE)
    assert decoded["path"][0] == shown_path(f"/m/{HOSTILE}/song0000000.mp3")
    assert "window.pwned" not in html.replace(data, "")
    assert html.count("<script") == 2 and re.search(r"https?://", html.replace(data, "")) is None


def test_stdout_is_the_default_and_is_utf8(qbsd_process, tmp_path):
    synthetic_index(tmp_path / "index", 30)
    with IndexStore(tmp_path / "index") as store, store.transaction():
        vector = np.full(len(TAGS), 0.5, dtype=np.float32)
        store.put_song("/m/é/ü.mp3", 1, 1, 30.0, vector, SongInfo("Björk", "Début", "Human Behaviour", 250.0, True))
    ascii_locale = {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    result = qbsd_process("map", index=tmp_path / "index", env=ascii_locale)
    assert result.returncode == 0, result
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.rstrip().endswith("</html>")
    assert "Björk" in result.stdout and "/m/é/ü.mp3" in result.stdout


# --------------------------------------------------------------------------- in the browser


def test_the_map_of_real_clips_in_a_browser(browser, library, tmp_path):
    page = make_map(library.qbsd, library.index, tmp_path)
    paths, matrix, tags = catalogue(library.index)
    load(browser, page)
    assert console_errors(browser) == []
    assert requests(browser) == []  # nothing fetched: the page is all there is
    assert browser.execute_script("return qbsdMap.count()") == len(paths) == len(library.files)
    spots = points(browser)

    # hover: the point's title (and album, top tags) in the tooltip
    chosen = isolated(spots)
    hover(browser, spots[chosen])
    assert browser.execute_script("return qbsdMap.hovered()") == chosen
    tip = browser.execute_script("return qbsdMap.tip()")
    assert browser.execute_script("return qbsdMap.title(arguments[0])", chosen) in tip
    top = tags[int(np.argmax(matrix[chosen]))]
    assert top in tip

    # the tag picker recolours: each song's colour now follows its calm score
    from selenium.webdriver.support.select import Select

    before = browser.execute_script("return Array.from({length: qbsdMap.songs()}, (_, i) => qbsdMap.colour(i))")
    Select(browser.find_element("id", "colour")).select_by_visible_text("mood:calm")
    after = browser.execute_script("return Array.from({length: qbsdMap.songs()}, (_, i) => qbsdMap.colour(i))")
    assert after != before and not set(after) & set(before)
    calm = matrix[:, tags.index("mood:calm")]
    assert after[int(np.argmax(calm))] != after[int(np.argmin(calm))] or np.ptp(calm) < 1 / 16

    # point size by a tag's score: the song that scores highest is drawn largest
    sizes = browser.execute_script("return Array.from({length: qbsdMap.songs()}, (_, i) => qbsdMap.size(i))")
    assert len(set(sizes)) == 1
    Select(browser.find_element("id", "size")).select_by_visible_text("mood:calm")
    sizes = browser.execute_script("return Array.from({length: qbsdMap.songs()}, (_, i) => qbsdMap.size(i))")
    assert sizes[int(np.argmax(calm))] == max(sizes) and sizes[int(np.argmin(calm))] == min(sizes)
    assert browser.execute_script("return qbsdMap.count()") == len(paths)  # every point still drawn
    Select(browser.find_element("id", "size")).select_by_visible_text("same")

    # the search box lights up the songs whose named tags score highest
    box = browser.find_element("id", "search")
    box.send_keys("piano")
    highlighted = browser.execute_script("return qbsdMap.highlighted()")
    assert highlighted == [int(np.argmax(matrix[:, tags.index("instrument:piano")]))]
    box.clear()
    box.send_keys(" ")
    assert browser.execute_script("return qbsdMap.highlighted()") is None

    # shift-drag a box over part of the map: the m3u lists exactly the songs inside it
    xs, ys = sorted(x for x, _ in spots), sorted(y for _, y in spots)
    start, end = (xs[0] - 5, ys[0] - 5), ((xs[len(xs) // 2] + xs[len(xs) // 2 - 1]) / 2, ys[-1] + 5)
    shift_drag(browser, start, end)
    inside = sorted(i for i, (x, y) in enumerate(spots) if start[0] <= x <= end[0] and start[1] <= y <= end[1])
    assert inside and len(inside) < len(spots)
    assert browser.execute_script("return qbsdMap.selected()") == inside
    # what they share: the tags whose mean stands highest above the library's, in its deviations
    stored = np.rint(np.clip(matrix, 0, 1) * 255) / 255  # the page holds scores as bytes
    spread = stored.std(axis=0)
    above = stored[inside].mean(axis=0) - stored.mean(axis=0)
    lifts = np.where(spread > 1e-9, above / np.where(spread > 1e-9, spread, 1), 0)
    shared = browser.execute_script("return qbsdMap.shared()")
    assert len(shared) == 5
    for tag, lift in shared:
        assert lift == pytest.approx(lifts[tags.index(tag)], abs=1e-6)
    assert shared[0][1] == pytest.approx(lifts.max(), abs=1e-6)
    assert browser.find_element("id", "selshares").text.startswith(f"they share: {shared[0][0]} ")
    m3u = browser.execute_script("return qbsdMap.m3u()").splitlines()
    assert m3u[0] == "#EXTM3U"
    titles = browser.execute_script("return arguments[0].map(i => qbsdMap.title(i))", inside)
    assert [line.split(",", 1)[1] for line in m3u[1::2]] == [title.replace("–", "-") for title in titles]
    assert all(re.fullmatch(r"#EXTINF:-?\d+,.+", line) for line in m3u[1::2])
    assert m3u[2::2] == [paths[i] for i in inside]
    assert {Path(p) for p in m3u[2::2]} <= {f.resolve() for f in library.files}

    # the other view: the whole vector, still a point per song
    Select(browser.find_element("id", "view")).select_by_value("vector")
    time.sleep(0.2)
    assert browser.execute_script("return [qbsdMap.view(), qbsdMap.count()]") == ["vector", len(paths)]
    assert console_errors(browser) == [] and requests(browser) == []


def test_hostile_names_run_no_script_in_a_browser(browser, qbsd, tmp_path):
    synthetic_index(tmp_path / "index", 20, [*TAGS, f"mood:{HOSTILE}"], hostile=True)
    page = make_map(qbsd, tmp_path / "index", tmp_path)
    load(browser, page)
    assert browser.execute_script("return qbsdMap.count()") == 20
    spots = points(browser)
    hover(browser, spots[isolated(spots, 3.0)])
    assert "</script>" in browser.execute_script("return qbsdMap.tip()")  # shown as text
    from selenium.webdriver.support.select import Select

    Select(browser.find_element("id", "colour")).select_by_index(len(TAGS) + 1)
    xs, ys = [x for x, _ in spots], [y for _, y in spots]
    shift_drag(browser, (min(xs) - 5, min(ys) - 5), (max(xs) + 5, max(ys) + 5))
    assert len(browser.execute_script("return qbsdMap.selected()")) == 20
    browser.find_element("id", "search").send_keys("script")
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.find_elements("css selector", "img") == []
    assert console_errors(browser) == [] and requests(browser) == []


def test_a_hundred_thousand_songs(browser, qbsd, tmp_path):
    from qbsd_cli.model import ModelInfo

    started = time.perf_counter()
    synthetic_index(tmp_path / "index", 100_000, list(ModelInfo.read(None).tags))
    built = time.perf_counter()
    page = make_map(qbsd, tmp_path / "index", tmp_path)
    mapped = time.perf_counter()
    load(browser, page)
    loaded = time.perf_counter()
    assert browser.execute_script("return qbsdMap.count()") == 100_000
    spot = browser.execute_script("return qbsdMap.point(12345)")
    hover(browser, (spot["x"], spot["y"]))
    hovered = browser.execute_script("return qbsdMap.hovered()")
    assert hovered >= 0 and browser.execute_script("return qbsdMap.title(arguments[0])", hovered) in (
        browser.execute_script("return qbsdMap.tip()")
    )
    frame = browser.execute_script("return qbsdMap.redraw()")
    assert console_errors(browser) == [] and requests(browser) == []
    print(
        f"100,000 songs: built {built - started:.1f} s, qbsd map {mapped - built:.1f} s, "
        f"{page.stat().st_size / 1e6:.1f} MB, loaded and painted {loaded - mapped:.1f} s, a redraw {frame:.0f} ms"
    )


def test_a_terminal_is_not_sent_the_page(tmp_path):
    import os
    import pty
    import subprocess
    import sys

    synthetic_index(tmp_path / "index", 5)
    terminal, other_end = pty.openpty()
    try:
        command = [sys.executable, "-m", "qbsd_cli", "map", "--index", str(tmp_path / "index")]
        completed = subprocess.run(command, stdout=other_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(other_end)
        os.close(terminal)
    assert completed.returncode == 2, completed
    assert completed.stderr.decode().count("\n") == 1 and b"--output FILE" in completed.stderr
