"""`qbsd map` at 1k, 10k and 100k songs: the time `qbsd map` takes, the page's size, and
the time to first paint in headless Chromium (Debian's chromium and chromium-driver,
driven by selenium), written to benchmarks/MAP.md.

    python benchmarks/map.py [--sizes 1000 10000 100000] [--rounds 3]
    python benchmarks/map.py --screenshot docs/map.png --index INDEX   # the map of an index

Synthetic indexes as benchmarks/side_by_side.py builds them (40 clusters of the shipped
model's 261-tag vectors, artists, albums, titles). Time to first paint is the page's own
`performance.now()` when its first frame is drawn (`qbsdMap.firstPaint`: navigation start
to the end of the first draw, data parsing and decoding included), the median of --rounds
fresh loads; "load" is selenium's `get` to that point, seen from outside.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from side_by_side import BUILD  # noqa: E402


def browser(width: int = 1200, height: int = 900):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(prefix='qbsd-bench-chromium-')}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_page_load_timeout(600)
    return driver


def first_paint(driver, page: Path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    driver.get("about:blank")
    started = time.perf_counter()
    driver.get(page.resolve().as_uri())
    while not driver.execute_script("return !!(window.qbsdMap && window.qbsdMap.firstPaint !== null)"):
        time.sleep(0.02)
    outside = time.perf_counter() - started
    return driver.execute_script("return qbsdMap.firstPaint") / 1000, outside


def qbsd_map(index: Path, page: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qbsd_cli", "map", "-i", str(index), "-o", str(page)], env=env, check=True)
    return time.perf_counter() - started


def screenshot(index: Path, target: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="qbsd-map-shot-"))
    qbsd_map(index, work / "map.html")
    driver = browser(1400, 900)
    try:
        first_paint(driver, work / "map.html")
        time.sleep(0.3)
        driver.save_screenshot(str(target))
    finally:
        driver.quit()
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the map of --index here")
    parser.add_argument("--index", type=Path)
    arguments = parser.parse_args()
    if arguments.screenshot:
        screenshot(arguments.index, arguments.screenshot)
        return
    work = Path(tempfile.mkdtemp(prefix="qbsd-map-bench-"))
    (work / "build.py").write_text(BUILD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    rows = []
    driver = browser()
    try:
        for size in arguments.sizes:
            index, page = work / f"index-{size}", work / f"map-{size}.html"
            subprocess.run([sys.executable, str(work / "build.py"), str(size), str(index)], env=env, check=True)
            made = qbsd_map(index, page)
            paints, loads = zip(*(first_paint(driver, page) for _ in range(arguments.rounds)))
            frame = statistics.median(driver.execute_script("return qbsdMap.redraw()") for _ in range(7)) / 1000
            rows.append((size, made, page.stat().st_size, statistics.median(paints), statistics.median(loads), frame))
            print(rows[-1], flush=True)
    finally:
        driver.quit()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# `qbsd map`: page size and time to first paint",
        "",
        "`python benchmarks/map.py` (synthetic indexes of the shipped model's 261 tags; headless Debian Chromium,",
        f"1200×900, median of {arguments.rounds} loads; one shared 2-core machine, so the times are indicative).",
        "",
        "| songs | `qbsd map` | whole-vector layout | page size | first paint (page's clock) | load seen by selenium "
        "| one redraw (a pan or zoom frame) |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for size, made, nbytes, paint, load, frame in rows:
        method = "t-SNE" if size <= 1000 else "PCA"
        lines.append(
            f"| {size:,} | {made:.1f} s | {method} | {nbytes / 1e6:.1f} MB | {paint * 1000:.0f} ms | {load * 1000:.0f} ms "
            f"| {frame * 1000:.1f} ms |"
        )
    (REPO / "benchmarks" / "MAP.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
