"""The ``"anneal"`` strategy, for wide layers: parallel heat-bath chains per size and direction.

Per size, the chains start from greedily grown multiplets and make heat-bath swap moves under a
cooling temperature, separately minimising and maximising Ω.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from oinfo_monitor.search.beams import (
    PAIR_SEED_TRIPLETS,
    Beam,
    distinct_beam,
    grow_beam,
    pair_seeds,
)
from oinfo_monitor.search.options import AnnealOptions
from oinfo_monitor.search.results import DIRECTIONS, SIGNS, Outcome
from oinfo_monitor.search.scorer import Scorer
from oinfo_monitor.search.sizes import ANNEAL_MAX, describe_sizes, resolve_sizes


def _boltzmann_pick(energy: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """Sample one candidate per row with probability ∝ exp(−E / (T·spread)), by the Gumbel trick.

    The spread is the row's standard deviation of finite energies, so the temperature is in units
    of how much the candidates differ; infinite energies are never picked.
    """
    valid = energy < math.inf
    count = valid.sum(1, keepdim=True).clamp_min(1)
    zero = torch.zeros_like(energy)
    mean = torch.where(valid, energy, zero).sum(1, keepdim=True) / count
    spread = (torch.where(valid, energy - mean, zero).square().sum(1, keepdim=True) / count).sqrt()
    scale = spread.clamp_min(1e-300).mul_(temperature)
    logits = (energy.amin(1, keepdim=True) - energy).div_(scale)
    uniform = torch.rand(energy.shape, generator=generator, dtype=torch.float64)
    gumbel = uniform.clamp_(1e-300, 1.0 - 1e-16).log_().neg_().log_().neg_()
    return torch.argmax(logits.add_(gumbel.to(energy.device)), dim=1)


def _run_chains(
    scorer: Scorer, state: Tensor, signs: Tensor, schedule: list[float], generator: torch.Generator
) -> tuple[Tensor, Tensor, int]:
    """Run every chain through the schedule; return each chain's best Ω, members and the count scored.

    A step removes one random member and re-adds a neuron drawn from the Boltzmann distribution over
    all candidates (a heat-bath swap: a Metropolis–Hastings move whose acceptance is always 1).
    """
    chains, size = state.shape
    best_values, best_members = scorer.score(state), state
    positions = torch.arange(size, device=state.device)
    rows = torch.arange(chains, device=state.device)
    scored = 0
    for temperature in schedule:
        drop = torch.randint(size, (chains,), generator=generator).to(state.device)
        rest = state[positions[None, :] != drop[:, None]].view(chains, size - 1)
        omega = scorer.grow(rest)
        scored += int(torch.isfinite(omega).sum())
        energy = torch.nan_to_num(signs[:, None] * omega, nan=math.inf)
        choice = _boltzmann_pick(energy, temperature, generator)
        state = torch.cat([rest, choice[:, None]], dim=1).sort(dim=1).values
        current = omega[rows, choice]
        better = signs * current < signs * best_values
        best_values = torch.where(better, current, best_values)
        best_members = torch.where(better[:, None], state, best_members)
    return best_values, best_members, scored


def _anneal_beams(
    scorer: Scorer,
    beams: dict[str, Beam],
    chains: int,
    schedule: list[float],
    generator: torch.Generator,
) -> tuple[dict[str, Beam], int]:
    """Anneal `chains` chains per direction started from the beams; the best distinct states return."""
    device = scorer.stats.cov.device
    rows = torch.arange(chains, device=device)
    state = torch.cat([beams[name].members[rows % len(beams[name].values)] for name in DIRECTIONS])
    signs = torch.tensor([SIGNS[name] for name in DIRECTIONS], dtype=torch.float64, device=device)
    values, state, scored = _run_chains(
        scorer, state, signs.repeat_interleave(chains), schedule, generator
    )
    annealed = {}
    for index, name in enumerate(DIRECTIONS):
        part = slice(index * chains, (index + 1) * chains)
        annealed[name] = distinct_beam(values[part], state[part], SIGNS[name], chains)
    return annealed, scored


def run_anneal(scorer: Scorer, sizes: list[int] | None, opts: AnnealOptions, seed: int) -> Outcome:
    """Parallel heat-bath chains per size, started from greedily grown multiplets."""
    sizes = resolve_sizes(sizes, opts.max_size, scorer, ANNEAL_MAX)
    chains, steps = opts.chains, opts.steps
    hot, cold = opts.temperature
    schedule = [hot * (cold / hot) ** (t / max(1, steps - 1)) for t in range(steps)]
    generator = torch.Generator().manual_seed(seed)
    outcome = Outcome("anneal", "")
    beams, outcome.evaluated, pairs = pair_seeds(scorer, chains, PAIR_SEED_TRIPLETS)
    current = 3
    for size in sizes:
        for name in DIRECTIONS:
            for _ in range(current, size):
                beams[name], _, scored = grow_beam(scorer, beams[name], SIGNS[name], chains)
                outcome.evaluated += scored
        current = size
        beams, scored = _anneal_beams(scorer, beams, chains, schedule, generator)
        outcome.evaluated += scored
        for name in DIRECTIONS:
            outcome.found[name][size] = beams[name].best("anneal", False)
    outcome.reason = (
        f"anneal: per size, {chains} chains per direction start from the best distinct multiplets "
        f"grown greedily (triplets from the {pairs:,} most correlated pairs, later sizes from the "
        f"previous size's annealed states), then {steps} heat-bath swap steps each (temperature "
        f"{hot:g} -> {cold:g} x candidate spread); sizes {describe_sizes(sizes)}, seed {seed}"
    )
    return outcome
