"""Noise and chance level for every layer the monitor measures (see `search.uncertainty`).

The bootstrap noise is computed at every evaluation; the chance level, which changes slowly
during training (it depends on the sample count, the marginals and the search), at a layer's
first evaluation and every `null_every` evaluations after, and reused in between. The number of
candidate neurons moves the chance level most (an extreme over more multiplets lies further from
zero), so a layer whose count of distinct neurons moved by more than `NEURON_DRIFT` of it since
its last null (neurons dying early in training) gets a new one sooner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oinfo_monitor.estimators import CopulaValues
from oinfo_monitor.search import SearchResult
from oinfo_monitor.search.uncertainty import (
    ChanceLevels,
    Noise,
    SurrogateExtremes,
    bootstrap_noise,
    levels_from,
    surrogate_extremes,
)

NEURON_DRIFT = 0.1


@dataclass
class Trust:
    """Computes each layer's noise and (at its cadence) chance levels with the monitor's settings.

    `chance` holds, per layer, the step its chance levels were computed at and the levels.
    """

    resamples: int
    surrogates: int
    null_every: int
    bias_correct: bool = True
    seed: int = 0
    chance_by_layer: dict[str, tuple[int, ChanceLevels]] = field(default_factory=dict)
    age: dict[str, int] = field(default_factory=dict)
    neurons: dict[str, int] = field(default_factory=dict)

    def of(
        self,
        layer: str,
        step: int,
        copula: CopulaValues,
        kept: list[int],
        result: SearchResult,
        search_options: dict[str, Any],
    ) -> tuple[Noise | None, tuple[int, ChanceLevels] | None]:
        """A layer's noise and chance levels from the copula values the search ran on (column i
        is neuron `kept[i]` of `result`'s members; `search_options` as the search got them)."""
        return self.noise(copula, kept, result), self.chance(layer, step, copula, search_options)

    def noise(self, copula: CopulaValues, kept: list[int], result: SearchResult) -> Noise | None:
        """The bootstrap noise of the multiplets the search chose, or None when turned off."""
        if not self.resamples:
            return None
        return bootstrap_noise(
            copula,
            result,
            index_map=kept,
            resamples=self.resamples,
            bias_correct=self.bias_correct,
            seed=self.seed,
        )

    def chance(
        self, layer: str, step: int, copula: CopulaValues, search_options: dict[str, Any]
    ) -> tuple[int, ChanceLevels] | None:
        """The layer's chance levels and the step they were computed at; None when turned off."""
        if not self.surrogates:
            return None
        due = self.due(layer, copula.n_variables)
        if due:
            found = self.surrogate_share(copula, search_options)
            self.store(layer, step, levels_from(list(found.values())))
        self.settle(layer, copula.n_variables, due)
        return self.latest(layer)

    def due(self, layer: str, neurons: int) -> bool:
        """Whether the layer's chance levels are to be computed at this evaluation: its first,
        every `null_every` evaluations, or when its count of distinct `neurons` drifted."""
        if not self.surrogates:
            return False
        count = self.neurons.get(layer)
        if count is None:
            return True
        return self.age[layer] >= self.null_every or abs(neurons - count) > NEURON_DRIFT * count

    def surrogate_share(
        self, copula: CopulaValues, search_options: dict[str, Any], share: tuple[int, int] = (0, 1)
    ) -> dict[int, SurrogateExtremes]:
        """This worker's share of the surrogate searches behind a layer's chance levels."""
        return surrogate_extremes(
            copula,
            surrogates=self.surrogates,
            share=share,
            bias_correct=self.bias_correct,
            seed=self.seed,
            search_options=search_options,
        )

    def settle(self, layer: str, neurons: int, due: bool) -> None:
        """Count one more evaluation of the layer; one that computed the chance levels (`due`)
        restarts the count and keeps its count of distinct `neurons`."""
        if due:
            self.neurons[layer] = neurons
            self.age[layer] = 0
        self.age[layer] = self.age.get(layer, 0) + 1

    def store(self, layer: str, step: int, levels: ChanceLevels) -> None:
        """Keep the chance levels computed at `step` for the layer's next evaluations."""
        self.chance_by_layer[layer] = (step, levels)

    def latest(self, layer: str) -> tuple[int, ChanceLevels] | None:
        """The layer's latest chance levels and their step, if any were computed."""
        return self.chance_by_layer.get(layer)
