"""What the experiments share: their repeated flags, torch threads, run folders, history curves and summaries."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

# ----------------------------------------------------------------------------------------------
# Flags.


def add_threads(group: argparse._ActionsContainer, why: str) -> None:
    """``--threads`` (default 1), with `why` one thread is the default for this experiment."""
    group.add_argument(
        "--threads", type=int, default=1, help=f"torch CPU threads (0: PyTorch's default); {why}"
    )


def set_threads(threads: int) -> None:
    """Apply ``--threads``: that many torch CPU threads, or PyTorch's own choice for 0."""
    if threads > 0:
        torch.set_num_threads(threads)


def add_schedule(group: argparse._ActionsContainer, log_points: int, every: int | None) -> None:
    """``--log-points`` and (unless `every` is None) ``--every``: the steps the O-information is evaluated at."""
    group.add_argument(
        "--log-points",
        type=int,
        default=log_points,
        help="evaluations spread log-uniformly over steps 1..steps (dense early, where the "
        "dynamics are); duplicates after rounding merge, so fewer happen",
    )
    if every is not None:
        group.add_argument(
            "--every",
            type=int,
            default=every,
            help="also evaluate every this many steps (0: never)",
        )


def add_run_folder(group: argparse._ActionsContainer, prefix: str) -> None:
    """``--name``, ``--runs-dir`` and ``--quiet``: where a run's outputs go and whether it talks."""
    group.add_argument(
        "--name", default=None, help=f"run folder name (default: {prefix}-<date>-<time>)"
    )
    group.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent of run folders")
    group.add_argument("--quiet", action="store_true", help="no progress bars or printout")


# ----------------------------------------------------------------------------------------------
# Run folders.


def new_run_dir(args: argparse.Namespace, prefix: str, taken: Callable[[Path], bool]) -> Path:
    """Create ``<runs-dir>/<name>``; refuse a folder that `taken` says holds a run (it would be appended to)."""
    run_dir = Path(args.runs_dir) / (args.name or time.strftime(f"{prefix}-%Y%m%d-%H%M%S"))
    if taken(run_dir):
        raise SystemExit(f"error: {run_dir} already holds a run; pass another --name or delete it")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


# ----------------------------------------------------------------------------------------------
# History curves and summaries.


def difference(later: int | None, earlier: int | None) -> int | None:
    """``later - earlier``, or None if either is missing."""
    return None if later is None or earlier is None else later - earlier


def describe(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and range of the defined values, how many there are and how many were undefined."""
    defined = [v for v in values if v is not None]
    if not defined:
        return {"n": 0, "missing": len(values), "median": None, "min": None, "max": None}
    return {
        "n": len(defined),
        "missing": len(values) - len(defined),
        "median": statistics.median(defined),
        "min": min(defined),
        "max": max(defined),
    }
