"""Compact TensorBoard logging: a real monitored run read back from its event files keeps each
layer within its scalar tag budget, keeps the headline curves with their band and chance level,
logs every size in one profile image per layer and evaluation, and charts synergy and redundancy
apart."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from torch import nn

from oinfo_monitor import OInfoMonitor
from oinfo_monitor.monitor.figures import size_profile
from oinfo_monitor.monitor.options import MonitorSettings
from oinfo_monitor.monitor.records import read_records

SIZES = list(range(3, 15))
"""Twelve sizes: more than a budget of 25 tags has room for (17 headline tags + 4 sizes)."""
BUDGET = 25
STEPS = (0, 2, 4)


def monitored_run(logdir: Path, last_step: int = max(STEPS), **options: Any) -> OInfoMonitor:
    """Train a two-hidden-layer MLP up to `last_step`, measured at every even step (`STEPS`)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    )
    x = torch.randn(300, 16)
    y = (x[:, 0] * x[:, 1] > 0).long()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = OInfoMonitor(
        model, x, layers=["0", "2"], every=2, strategy="greedy", sizes=SIZES, logdir=logdir,
        noise_resamples=2, surrogates=3, null_every=1, track_phases=False, **options,
    )  # fmt: skip
    for step in range(last_step + 1):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step(step)
    monitor.close()
    return monitor


def read_events(logdir: Path) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventAccumulator, list[dict[str, Any]]]:
    """One monitored run with a budget smaller than its sizes need; its events and history."""
    logdir = tmp_path_factory.mktemp("compact")
    monitored_run(logdir, tag_budget=BUDGET)
    return read_events(logdir), list(read_records(logdir / "oinfo_history.jsonl"))


def layer_scalars(events: EventAccumulator, layer: str) -> list[str]:
    """The scalar tags of one layer (headline and per-size)."""
    pattern = re.compile(rf"^oinfo(_by_size)?/{re.escape(layer)}/")
    return [tag for tag in events.Tags()["scalars"] if pattern.match(tag)]


def test_each_layer_stays_within_its_tag_budget_and_the_history_keeps_every_size(
    run: tuple[EventAccumulator, list[dict[str, Any]]],
) -> None:
    """Twelve sizes searched, 25 tags allowed: four sizes keep curves, the smallest and largest
    among them; the history file still holds all twelve at every step."""
    events, history = run
    for layer in ("0", "2"):
        tags = layer_scalars(events, layer)
        assert len(tags) <= BUDGET, tags
        by_size = sorted(t for t in tags if t.startswith("oinfo_by_size/"))
        sizes = sorted({int(t.rsplit("_k", 1)[1]) for t in by_size})
        assert len(by_size) == 2 * len(sizes) and len(sizes) == 4, by_size
        assert sizes[0] == min(SIZES) and sizes[-1] == max(SIZES)
        for step in STEPS:
            kept = {r["size"] for r in history if r["layer"] == layer and r["step"] == step}
            assert kept == set(SIZES)


def test_the_default_budget_bounds_a_search_of_many_sizes(tmp_path: Path) -> None:
    """Without `tag_budget`, the same twelve sizes stay within the documented default of 40."""
    monitored_run(tmp_path, last_step=0)
    events = read_events(tmp_path)
    for layer in ("0", "2"):
        assert len(layer_scalars(events, layer)) <= MonitorSettings().tag_budget == 40


def test_headline_curves_carry_their_band_and_chance_level(
    run: tuple[EventAccumulator, list[dict[str, Any]]],
) -> None:
    """At every evaluation: the extreme over all twelve sizes (also those without a curve), its
    ±2 SD band from the history's headline SD, and its chance level."""
    events, history = run
    for layer in ("0", "2"):
        for name, extreme in (("synergy", min), ("redundancy", max)):
            series = {
                suffix: {e.step: e.value for e in events.Scalars(f"oinfo/{layer}/{name}{suffix}")}
                for suffix in ("", "_lower", "_upper", "_chance", "_significant")
            }
            for step in STEPS:
                rows = [r for r in history if r["layer"] == layer and r["step"] == step]
                value = extreme(r[name] for r in rows)
                sd, chance = rows[0][f"headline_{name}_sd"], rows[0][f"headline_{name}_chance"]
                assert series[""][step] == pytest.approx(value, abs=1e-6)
                assert series["_lower"][step] == pytest.approx(value - 2 * sd, abs=1e-6)
                assert series["_upper"][step] == pytest.approx(value + 2 * sd, abs=1e-6)
                assert series["_chance"][step] == pytest.approx(chance, abs=1e-6)
                assert series["_significant"][step] in (0.0, 1.0)


def test_one_size_profile_image_per_layer_and_evaluation(
    run: tuple[EventAccumulator, list[dict[str, Any]]],
) -> None:
    """The profile image is written once per evaluation for each layer, as a drawn PNG."""
    events, _ = run
    for layer in ("0", "2"):
        images = events.Images(f"oinfo/{layer}/size_profile")
        assert [image.step for image in images] == list(STEPS)
        with Image.open(io.BytesIO(images[-1].encoded_image_string)) as picture:
            colours = picture.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 10  # lines and a band, not a blank page


def test_the_profile_shows_every_size_with_band_and_chance_level(
    run: tuple[EventAccumulator, list[dict[str, Any]]],
) -> None:
    """Built from one evaluation's records, the profile's synergy axis plots all twelve sizes
    (beyond the tag budget too), a ±2 SD band and a chance-level line; redundancy has its own axis."""
    _, history = run
    rows = [r for r in history if r["layer"] == "0" and r["step"] == STEPS[-1]]
    figure = size_profile(rows)
    synergy_axis, redundancy_axis = figure.axes
    value_line, chance_line = synergy_axis.lines[:2]
    assert list(value_line.get_xdata()) == SIZES
    assert list(value_line.get_ydata()) == pytest.approx([r["synergy"] for r in rows])
    assert list(chance_line.get_ydata()) == pytest.approx([r["synergy_chance"] for r in rows])
    assert len(synergy_axis.collections) == 1  # the band
    assert list(redundancy_axis.lines[0].get_ydata()) == pytest.approx(
        [r["redundancy"] for r in rows]
    )


def test_the_layout_never_puts_synergy_and_redundancy_on_one_chart(
    run: tuple[EventAccumulator, list[dict[str, Any]]],
) -> None:
    """Read from the event file: every chart's patterns match the written tags of one measure
    only, and each layer's synergy and redundancy headlines each have a chart."""
    events, _ = run
    layout = layout_pb2.Layout()
    layout.ParseFromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    written = events.Tags()["scalars"]
    charted: set[str] = set()
    for category in layout.category:
        for chart in category.chart:
            content = chart.margin if chart.HasField("margin") else chart.multiline
            patterns = (
                [s.value for s in content.series] if chart.HasField("margin") else list(content.tag)
            )
            matched = {t for t in written if any(re.search(p, t) for p in patterns)}
            measures = {m for m in ("synergy", "redundancy") if any(m in t for t in matched)}
            assert len(measures) == 1, (chart.title, sorted(matched))
            charted |= matched
    for layer in ("0", "2"):
        assert {f"oinfo/{layer}/synergy", f"oinfo/{layer}/redundancy"} <= charted


def test_a_budget_without_room_for_the_headline_is_refused() -> None:
    """The budget must hold the 17 headline tags; a smaller one fails when the monitor is built."""
    with pytest.raises(ValueError, match="tag_budget must be an integer >= 17"):
        MonitorSettings(tag_budget=16)
    with pytest.raises(ValueError, match="tag_budget"):
        OInfoMonitor(
            nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)), torch.randn(50, 4), tag_budget=3
        )
