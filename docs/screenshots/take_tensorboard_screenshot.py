"""Screenshot the monitor's TensorBoard dashboards with headless Chromium, for the documentation.

Starts TensorBoard on 127.0.0.1 (a free port, ``--samples_per_plugin scalars=100000`` so every
point is served), waits until it serves the runs' synergy curves, photographs two views with
headless Chromium and stops TensorBoard again (by the PID of the process it started):

- the custom-scalars dashboard (``#custom_scalars``): per layer, synergy with redundancy, and every
  layer's synergy and redundancy, as laid out by `oinfo_monitor.monitor.sinks.custom_layout`;
- the scalars dashboard filtered to the synergy tags (``#scalars&tagFilter=...``; by default the
  headline tags ``oinfo/<layer>/synergy`` and ``oinfo/<layer>/synergy_size``).

`logdir` is a folder of runs (``runs/``) or one run folder; a run folder is served under its own
name (through a symbolic link in a temporary folder), so that only its charts are shown.

Charts take a moment to render after the page loads, so each view is taken with a growing virtual
time budget until two successive screenshots agree and show drawn chart lines.

Typical use, from the repository root after ``make demo`` (the docs' image is of the demo run)::

    .venv/bin/python docs/screenshots/take_tensorboard_screenshot.py runs/<demo run folder>

``--views scalars --tag-filter REGEX --scalars-png NAME`` takes only the scalars view, e.g. of the
loss next to the synergy; ``integration_runs.py`` (same folder) does so for the Hugging Face
Trainer and Lightning sections of docs/monitor.md.

Chromium: Debian's ``chromium`` package (``apt-get install -y chromium``, as root); pass another
binary with ``--chromium``. Nothing but 127.0.0.1 is contacted: the browser runs with networking
extras switched off and TensorBoard serves its own assets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageChops

REPO = Path(__file__).resolve().parents[2]
IMG_DIR = REPO / "docs" / "img"
CUSTOM_SCALARS_PNG = "tensorboard_custom_scalars.png"
SCALARS_PNG = "tensorboard_scalars_synergy.png"
VIEWS = ("custom_scalars", "scalars")
"""The dashboards that can be photographed."""
MAX_BYTES = 500_000
"""Largest PNG kept as is; a bigger one is reduced to a 256-colour palette."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
BUDGETS_MS = (4_000, 8_000, 16_000, 32_000, 64_000)
"""Virtual time budgets tried in turn until the page has settled."""

TOOLBAR_PX = 80
"""Height of TensorBoard's orange toolbar (and some margin), left out of the chart-pixel count."""
SIDEBAR_FRACTION = 0.25
"""Left part of the window holding the run selector (orange check boxes), also left out."""
MIN_LINE_PIXELS = 1_500
"""Saturated pixels in the chart area below which the charts are taken as not yet drawn."""
VISIBLE_DIFFERENCE = 40
"""Grey-level difference (0-255) from which a pixel counts as changed between two screenshots."""
SETTLED_FRACTION = 0.005
"""A page whose screenshot changes in fewer pixels than this fraction has finished rendering."""
TRIM_MARGIN_PX = 24
"""Background kept below the last drawn row when the empty bottom of a screenshot is cut."""


def is_run_folder(path: Path) -> bool:
    """Whether `path` holds TensorBoard event files itself (one run, not a folder of runs)."""
    return any(path.glob("events.out.tfevents.*"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_chromium(explicit: str | None) -> str:
    """The Chromium binary to use: `explicit`, or the first of the usual names on PATH."""
    candidates = [explicit] if explicit else ["chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(
        f"no Chromium found (tried {', '.join(candidates)}); on Debian/Ubuntu, as root: "
        "apt-get update && apt-get install -y chromium; or pass --chromium /path/to/binary"
    )


@contextlib.contextmanager
def tensorboard(logdir: Path, port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run TensorBoard on 127.0.0.1:`port` for the duration of the block, then stop it by its PID."""
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--samples_per_plugin",
        "scalars=100000",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        # SIGTERM to the PID we started; TensorBoard's data server exits with its parent.
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get_json(url: str) -> object:
    """GET a JSON document from the local TensorBoard."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def synergy_tags(base: str) -> dict[str, list[str]]:
    """Per run, its headline synergy tags (``oinfo/<layer>/synergy``)."""
    tags = get_json(f"{base}/data/plugin/scalars/tags")
    assert isinstance(tags, dict)
    found = {
        run: sorted(t for t in run_tags if t.startswith("oinfo/") and t.endswith("/synergy"))
        for run, run_tags in tags.items()
    }
    return {run: run_tags for run, run_tags in found.items() if run_tags}


def point_count(base: str, tags: dict[str, list[str]]) -> int:
    """Total points served for the synergy tags, to tell when loading has finished."""
    total = 0
    for run, run_tags in tags.items():
        for tag in run_tags:
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            points = get_json(f"{base}/data/plugin/scalars/scalars?{query}")
            assert isinstance(points, list)
            total += len(points)
    return total


def wait_until_serving(
    base: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> dict[str, list[str]]:
    """Poll TensorBoard until it serves synergy tags whose point counts have stopped growing."""
    deadline = time.monotonic() + timeout
    previous = -1
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"TensorBoard exited with code {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            tags = synergy_tags(base)
            count = point_count(base, tags) if tags else 0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            tags, count = {}, 0
        if tags and count == previous:
            return tags
        previous = count if tags else -1
        time.sleep(2.0)
    raise SystemExit(
        f"TensorBoard served no oinfo/<layer>/synergy tags within {timeout:.0f} s: is the log "
        f"directory one the monitor wrote to (e.g. a run folder of `make demo`)? Its log:\n"
        f"{log_path.read_text()}"
    )


def screenshot(chromium: str, url: str, png: Path, size: tuple[int, int], budget_ms: int) -> None:
    """One headless Chromium screenshot of `url` after `budget_ms` of virtual time."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={png}",
            url,
        ]
        done = subprocess.run(command, capture_output=True, timeout=budget_ms / 1000 + 120)
    if done.returncode != 0 or not png.is_file():
        raise SystemExit(
            f"Chromium failed (exit code {done.returncode}) on {url}:\n"
            + done.stderr.decode(errors="replace")[-3000:]
        )


def line_pixels(png: Path) -> int:
    """Saturated (coloured) pixels in the chart area: chart lines, markers and icons."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    area = rgb.crop((int(width * SIDEBAR_FRACTION), TOOLBAR_PX, width, height))
    channels = area.split()
    spread = ImageChops.subtract(
        ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2]),
        ImageChops.darker(ImageChops.darker(channels[0], channels[1]), channels[2]),
    )
    histogram = spread.histogram()
    return sum(histogram[80:])


def changed_fraction(a: Path, b: Path) -> float:
    """Fraction of pixels that differ visibly between two screenshots (1.0 if sizes differ).

    Chart lines are anti-aliased slightly differently from one rendering to the next, so a
    settled page is recognised by a small fraction, not by identical pixels.
    """
    with Image.open(a) as first, Image.open(b) as second:
        if first.size != second.size:
            return 1.0
        difference = ImageChops.difference(first.convert("L"), second.convert("L"))
    width, height = difference.size
    return sum(difference.histogram()[VISIBLE_DIFFERENCE:]) / (width * height)


def settled_screenshot(chromium: str, url: str, out: Path, size: tuple[int, int]) -> int:
    """Screenshot `url` into `out` once the charts are drawn and the page no longer changes.

    Each try gives the page more virtual time; the page has settled when the charts are drawn and
    the screenshot differs from the previous one in less than `SETTLED_FRACTION` of its pixels.
    Returns the virtual time budget (ms) of the screenshot kept.
    """
    pixels: list[int] = []
    with tempfile.TemporaryDirectory(prefix="tb-shots-") as tmp:
        previous: Path | None = None
        for index, budget in enumerate(BUDGETS_MS):
            shot = Path(tmp) / f"shot{index}.png"
            screenshot(chromium, url, shot, size, budget)
            pixels.append(line_pixels(shot))
            if pixels[-1] < MIN_LINE_PIXELS:
                previous = None
                continue
            if previous is not None and changed_fraction(previous, shot) < SETTLED_FRACTION:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, out)
                return budget
            previous = shot
    raise SystemExit(
        f"the charts at {url} did not settle within {BUDGETS_MS[-1]} ms of virtual time "
        f"(chart pixels per try: {pixels}; drawn means at least {MIN_LINE_PIXELS})"
    )


def trim_bottom(png: Path, margin: int = TRIM_MARGIN_PX) -> None:
    """Cut the empty background below the last drawn row (keeping `margin` pixels of it)."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    background = Image.new("RGB", (width, height), rgb.getpixel((width - 1, height - 1)))
    box = (
        ImageChops.difference(rgb, background).convert("L").point(lambda v: v > 8 and 255).getbbox()
    )
    if box is not None and box[3] + margin < height:
        rgb.crop((0, 0, width, box[3] + margin)).save(png, optimize=True)


def shrink(png: Path, max_bytes: int = MAX_BYTES) -> None:
    """Re-encode a PNG above `max_bytes` with a 256-colour palette (charts survive it well)."""
    if png.stat().st_size <= max_bytes:
        return
    with Image.open(png) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(png, optimize=True)
    if png.stat().st_size > max_bytes:
        print(
            f"warning: {png} is {png.stat().st_size:,} bytes even with a palette", file=sys.stderr
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "logdir",
        nargs="?",
        default="runs",
        help="TensorBoard log directory: a run folder, or a folder of runs (make demo writes runs/)",
    )
    parser.add_argument("--out-dir", default=str(IMG_DIR), help="where the PNGs are written")
    parser.add_argument(
        "--views",
        nargs="+",
        choices=VIEWS,
        default=list(VIEWS),
        help="dashboards to photograph",
    )
    parser.add_argument("--custom-scalars-png", default=CUSTOM_SCALARS_PNG, help="its file name")
    parser.add_argument("--scalars-png", default=SCALARS_PNG, help="its file name")
    parser.add_argument(
        "--tag-filter",
        default=r"^oinfo/[^/]+/synergy",
        help="regex for the scalars dashboard's tag filter (try 'synergy' for every size too)",
    )
    parser.add_argument("--width", type=int, default=1600, help="browser window width (px)")
    parser.add_argument("--height", type=int, default=1000, help="browser window height (px)")
    parser.add_argument(
        "--keep-empty",
        action="store_true",
        help="keep the empty background below the charts (default: cut it off)",
    )
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: on PATH)")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for TensorBoard's data"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Path]:
    """Take the screenshots of the chosen views; return their paths."""
    args = parse_args(argv)
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise SystemExit(f"{logdir} is not a directory; run `make demo` first or pass a run folder")
    chromium = find_chromium(args.chromium)
    out_dir = Path(args.out_dir)
    size = (args.width, args.height)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = {
        "custom_scalars": (args.custom_scalars_png, f"{base}/#custom_scalars"),
        "scalars": (
            args.scalars_png,
            f"{base}/#scalars&tagFilter={urllib.parse.quote(args.tag_filter)}",
        ),
    }
    views = [urls[view] for view in args.views]
    written = []
    with tempfile.TemporaryDirectory(prefix="tensorboard-log-") as tmp:
        log_path = Path(tmp) / "tensorboard.log"
        if is_run_folder(logdir):
            served = Path(tmp) / "runs"
            served.mkdir()
            (served / logdir.resolve().name).symlink_to(logdir.resolve(), target_is_directory=True)
        else:
            served = logdir
        with tensorboard(served, port, log_path) as process:
            tags = wait_until_serving(base, process, log_path, args.timeout)
            print(f"TensorBoard on {base} (PID {process.pid}) serves {tags}")
            for name, url in views:
                out = out_dir / name
                budget = settled_screenshot(chromium, url, out, size)
                if not args.keep_empty:
                    trim_bottom(out)
                shrink(out)
                print(f"{out}: {out.stat().st_size:,} bytes ({url}, {budget} ms virtual time)")
                written.append(out)
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
