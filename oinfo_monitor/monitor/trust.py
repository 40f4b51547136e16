"""Noise and chance level for every layer the monitor measures (see `search.uncertainty`).

The bootstrap noise is computed at every evaluation; the chance level, which changes slowly
during training (it depends on the sample count, the marginals and the search), at a layer's
first evaluation and every `null_every` evaluations after, and reused in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from oinfo_monitor.estimators import TiePolicy
from oinfo_monitor.search import SearchResult
from oinfo_monitor.search.uncertainty import ChanceLevels, Noise, bootstrap_noise, chance_levels


@dataclass
class Trust:
    """Computes each layer's noise and (at its cadence) chance levels with the monitor's settings.

    `chance` holds, per layer, the step its chance levels were computed at and the levels.
    """

    resamples: int
    surrogates: int
    null_every: int
    target: Tensor | None
    ties: TiePolicy = "random"
    bias_correct: bool = True
    seed: int = 0
    chance_by_layer: dict[str, tuple[int, ChanceLevels]] = field(default_factory=dict)
    age: dict[str, int] = field(default_factory=dict)

    def of(
        self,
        layer: str,
        step: int,
        values: Tensor,
        kept: Tensor,
        result: SearchResult,
        search_options: dict[str, Any],
    ) -> tuple[Noise | None, tuple[int, ChanceLevels] | None]:
        """A layer's noise (`values`: all its neurons, numbered as `result`'s members) and chance
        levels (from its `kept` neurons, searched with `search_options`)."""
        return self.noise(values, result), self.chance(layer, step, values[:, kept], search_options)

    def noise(self, values: Tensor, result: SearchResult) -> Noise | None:
        """The bootstrap noise of the multiplets the search chose, or None when turned off."""
        if not self.resamples:
            return None
        return bootstrap_noise(
            values,
            result,
            resamples=self.resamples,
            y=self.target,
            ties=self.ties,
            bias_correct=self.bias_correct,
            seed=self.seed,
        )

    def chance(
        self, layer: str, step: int, values: Tensor, search_options: dict[str, Any]
    ) -> tuple[int, ChanceLevels] | None:
        """The layer's chance levels and the step they were computed at; None when turned off."""
        if not self.surrogates:
            return None
        age = self.age.get(layer, self.null_every)
        if layer not in self.chance_by_layer or age >= self.null_every:
            levels = chance_levels(
                values,
                surrogates=self.surrogates,
                y=self.target,
                ties=self.ties,
                bias_correct=self.bias_correct,
                seed=self.seed,
                search_options=search_options,
            )
            self.chance_by_layer[layer] = (step, levels)
            age = 0
        self.age[layer] = age + 1
        return self.chance_by_layer[layer]
