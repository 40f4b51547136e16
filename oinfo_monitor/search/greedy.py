"""The ``"greedy"`` strategy: an exhaustive (or, for wide layers, pair) seed, then beam growth.

Each of the `beam` best multiplets grows by the neuron that lowers (synergy) or raises
(redundancy) Ω most, every candidate of a multiplet scored at once by `Scorer.grow`.
"""

from __future__ import annotations

import functools
import math

import torch

from oinfo_monitor.estimators.state import CopulaCovariance
from oinfo_monitor.estimators.validation import TargetModel
from oinfo_monitor.search.beams import PAIR_SEED_TRIPLETS, Beam, grow_beam, pair_seeds
from oinfo_monitor.search.exhaustive import exhaustive_beams, exhaustive_seconds
from oinfo_monitor.search.options import GreedyOptions
from oinfo_monitor.search.results import DIRECTIONS, SIGNS, Outcome
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import GREEDY_MAX, resolve_sizes

SEED_SECONDS = 0.25
"""Time greedy's exhaustive seed may take by default."""

# The largest default seed size.
_SEED_MAX_SIZE = 6


def _default_start(n: int, top: int, seconds: float) -> int:
    """Largest seed size s ≤ min(6, top) whose exhaustive sizes 3..s fit `seconds`; 0 if even 3 does not."""
    start = 0
    for size in range(3, min(_SEED_MAX_SIZE, top) + 1):
        if exhaustive_seconds(n, range(3, size + 1)) > seconds:
            break
        start = size
    return start


def run_greedy(
    scorer: Scorer,
    sizes: list[int] | None,
    opts: GreedyOptions,
    seed_seconds: float = SEED_SECONDS,
) -> Outcome:
    """Exhaustive seed (or pair seed for wide layers), then beam growth one neuron at a time."""
    sizes = resolve_sizes(sizes, opts.max_size, scorer, GREEDY_MAX)
    top, beam_width = sizes[-1], opts.beam
    start = opts.start_size or _default_start(scorer.n, top, seed_seconds)
    start = min(start, top)
    outcome = Outcome("greedy", "")
    if start:
        beams, seed_text = _exhaustive_seed(scorer, sizes, start, beam_width, outcome)
    else:
        start = 3
        beams, seed_text = _pair_seed(scorer, sizes, beam_width, seed_seconds, outcome)
    for size in range(start + 1, top + 1):
        shift = _independent_shift(scorer.stats, size)
        for name in DIRECTIONS:
            beams[name], parents, scored = grow_beam(scorer, beams[name], SIGNS[name], beam_width)
            outcome.evaluated += scored
            if size in sizes:
                outcome.found[name][size] = beams[name].best("greedy", False)
            change = float(beams[name].values[0]) - float(parents[0]) - shift
            if abs(change) <= opts.plateau_tol * max(1.0, abs(float(parents[0]))):
                outcome.plateau[name].append(size)
    growth = f", then beam-{beam_width} growth to size {top}" if top > start else ""
    outcome.reason = f"greedy: {seed_text}{growth}"
    return outcome


def _independent_shift(stats: CopulaCovariance, size: int) -> float:
    """Change of Ω (bits) when a neuron independent of everything joins a multiplet of size−1.

    It is 0 for plug-in estimates; the bias correction depends on set sizes only and moves it by
    a small, known amount, computed here as the Ω of all-independent (identity) covariances.
    """
    return _identity_shift(size, stats.target, stats.n_samples, stats.n_classes, stats.bias_correct)


@functools.lru_cache(maxsize=1024)
def _identity_shift(
    size: int, target: TargetModel, samples: int, classes: int, correct: bool
) -> float:
    """`_independent_shift` for one setting (nothing else enters it), computed once on the CPU."""
    eye = torch.eye(size + (target == "continuous"), dtype=torch.float64)
    independent = CopulaCovariance(
        eye, samples, size, target, eye if classes else None, classes, correct, "random", 0
    )
    members = list(range(size))
    values = independent.oinfo([members[:-1], members])
    return float(values[1] - values[0])


def _exhaustive_seed(
    scorer: Scorer, sizes: list[int], start: int, beam_width: int, outcome: Outcome
) -> tuple[dict[str, Beam], str]:
    """Exhaustive results for requested sizes ≤ start, and the beams at `start` to grow from."""
    beams: dict[str, Beam] = {}
    for size in sorted({k for k in sizes if k < start} | {start}):
        beams = exhaustive_beams(scorer, size, beam_width)
        outcome.evaluated += math.comb(scorer.n, size)
        if size in sizes:
            for name in DIRECTIONS:
                outcome.found[name][size] = beams[name].best("exhaustive", True)
    return beams, f"exhaustive up to size {start} ({outcome.evaluated:,} multiplets)"


def _pair_seed(
    scorer: Scorer, sizes: list[int], beam_width: int, seed_seconds: float, outcome: Outcome
) -> tuple[dict[str, Beam], str]:
    """Greedy's seed when all triplets are too many: triplets grown from the most correlated pairs."""
    affordable = int(seed_seconds / exhaustive_seconds(3, [3]))  # one triplet's cost
    triplets = max(scorer.n * beam_width, min(PAIR_SEED_TRIPLETS, affordable))
    beams, scored, pairs = pair_seeds(scorer, beam_width, triplets)
    outcome.evaluated += scored
    if 3 in sizes:
        for name in DIRECTIONS:
            outcome.found[name][3] = beams[name].best("greedy", False)
    text = (
        f"all C({scorer.n}, 3) = {math.comb(scorer.n, 3):,} triplets would take about "
        f"{exhaustive_seconds(scorer.n, [3]):.1f} s (seed budget {seed_seconds:g} s), so seed "
        f"triplets grown from the {pairs:,} most correlated pairs"
    )
    return beams, text
