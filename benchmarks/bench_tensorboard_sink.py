"""What does compact TensorBoard logging cost per evaluation? The sink against every size as scalars.

Replays evaluations of one layer with many multiplet sizes (by default synthetic records shaped
like the grokking demo's: 196 of the sizes 2..250, with SD and chance level; or the records of a
history file, e.g. a `make demo` run) into two writers, interleaved, in the same run:

- baseline: the headline scalars plus two scalar tags per size and the layer's record scalars
  once per size (what the monitor wrote before the tag budget; its bars figure left out);
- sink: `TensorBoardSink` with the default tag budget, which also draws the size profile image.

It prints each one's scalar tag count and milliseconds per evaluation (median and total), and
their ratio.

    python benchmarks/bench_tensorboard_sink.py                    # synthetic, the docs' figure
    python benchmarks/bench_tensorboard_sink.py --history runs/<run>/oinfo_history.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Any

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from oinfo_monitor.monitor.records import Evaluation, headline, read_records
from oinfo_monitor.monitor.sinks import (
    RECORD_SCALARS,
    TensorBoardSink,
    headline_scalars,
    layer_tag,
    size_tag,
)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", default=None, help="replay this history file's evaluations")
    parser.add_argument("--evaluations", type=int, default=40, help="evaluations to replay")
    parser.add_argument("--sizes", type=int, default=196, help="sizes per synthetic evaluation")
    return parser.parse_args()


def synthetic(evaluations: int, sizes: int) -> list[list[dict[str, Any]]]:
    """Records of one layer ("hidden") with `sizes` of the sizes 2..250 per evaluation."""
    rng = np.random.default_rng(0)
    out = []
    for step in range(evaluations):
        chosen = sorted(rng.choice(np.arange(2, 251), size=sizes, replace=False).tolist())
        records = []
        for size in chosen:
            synergy = -0.4 * np.sin(size / 80) + rng.normal(0, 0.05)
            redundancy = 0.02 * size + rng.normal(0, 0.05)
            records.append(
                {"step": step, "layer": "hidden", "size": size, "synergy": synergy,
                 "redundancy": redundancy, "synergy_members": list(range(size)),
                 "synergy_sd": 0.01, "redundancy_sd": 0.02, "synergy_chance": -0.01,
                 "redundancy_chance": 0.01, "headline_synergy_sd": 0.01,
                 "headline_redundancy_sd": 0.02, "headline_synergy_chance": -0.01,
                 "headline_redundancy_chance": 0.01, "search_seconds": 0.5,
                 "trust_seconds": 0.5, "dead_neurons": 0, "duplicate_neurons": 0}
            )  # fmt: skip
        out.append(records)
    return out


def replayed(path: str, evaluations: int) -> list[list[dict[str, Any]]]:
    """The first `evaluations` evaluations of a history file, one list of records each."""
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in read_records(path):
        by_step[int(record["step"])].append(record)
    return [by_step[step] for step in sorted(by_step)[:evaluations]]


def every_size_as_scalars(writer: SummaryWriter, evaluation: Evaluation) -> None:
    """The baseline: headline scalars, two tags per size and the record scalars once per size."""
    step = evaluation.step
    for tag, value in headline_scalars(evaluation).items():
        writer.add_scalar(tag, value, step)
    for record in evaluation.records:
        for name in ("synergy", "redundancy"):
            writer.add_scalar(size_tag(record["layer"], name, record["size"]), record[name], step)
        for name in RECORD_SCALARS:
            writer.add_scalar(layer_tag(record["layer"], name), record[name], step)
    writer.flush()


def main() -> None:
    """Replay the evaluations into both writers, interleaved; print the table and the ratio."""
    args = parse_args()
    source = args.history or f"synthetic, {args.sizes} sizes"
    evaluations = (
        replayed(args.history, args.evaluations)
        if args.history
        else synthetic(args.evaluations, args.sizes)
    )
    folders = {name: tempfile.mkdtemp(prefix=f"bench-{name}-") for name in ("baseline", "sink")}
    writers = {name: SummaryWriter(folder) for name, folder in folders.items()}
    sink = TensorBoardSink(writers["sink"], figure_every=0)
    sink.start(sorted({r["layer"] for r in evaluations[0]}), {"benchmark": source})
    seconds: dict[str, list[float]] = {"baseline": [], "sink": []}
    for index, records in enumerate(evaluations):
        evaluation = Evaluation(int(records[0]["step"]), records, {}, summary=headline(records))
        order = ("baseline", "sink") if index % 2 == 0 else ("sink", "baseline")
        for name in order:
            tic = time.perf_counter()
            if name == "sink":
                sink.write(evaluation)
            else:
                every_size_as_scalars(writers[name], evaluation)
            seconds[name].append(time.perf_counter() - tic)
    for writer in writers.values():
        writer.close()
    print(f"{len(evaluations)} evaluations ({source})\n")
    print(
        "| scheme | scalar tags | ms per evaluation (median) | total s |\n| --- | --- | --- | --- |"
    )
    for name, folder in folders.items():
        events = EventAccumulator(folder, size_guidance={"scalars": 1})
        events.Reload()
        median = 1000 * statistics.median(seconds[name])
        tags = len(events.Tags()["scalars"])
        print(f"| {name} | {tags} | {median:.0f} | {sum(seconds[name]):.2f} |")
    print(f"\nsink / baseline, total time: {sum(seconds['sink']) / sum(seconds['baseline']):.2f}")


if __name__ == "__main__":
    main()
