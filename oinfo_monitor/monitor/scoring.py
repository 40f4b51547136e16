"""Scoring captured activations: per layer the neuron filter, the copula, the search and its trust.

This is the part of an evaluation that needs no model: the training thread captures the probe's
activations (`capture.capture_activations`); any thread (the background worker, see
`monitor.background`) or any rank (its share under DDP, see `monitor.distributed`) scores them
with a `LayerScorer`, and `assemble` turns the scores of every layer into one `Evaluation`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from oinfo_monitor.estimators import TiePolicy, copula_values, distinct_neurons
from oinfo_monitor.monitor.records import Evaluation, headline, records_from_result
from oinfo_monitor.monitor.trust import Trust
from oinfo_monitor.search import SearchResult, search_covariance
from oinfo_monitor.search.uncertainty import ChanceLevels, Noise


@dataclass
class LayerScore:
    """One layer's search result, its record context, its noise and chance level.

    `trust_error` says why the noise and chance level are missing when computing them failed
    (the value stands); the monitor warns about it once.
    """

    result: SearchResult
    context: dict[str, Any]
    noise: Noise | None
    chance: tuple[int, ChanceLevels] | None
    trust_error: str | None = None


Scores = dict[str, LayerScore | str]
"""layer -> its score, or why it was skipped (NaN activations, too few distinct neurons)."""


@dataclass
class LayerScorer:
    """Scores layers with the monitor's settings; holds the per-layer chance levels (`trust`).

    Examples:
        >>> scorer = LayerScorer(None, "random", 0, True, {"l": {"sizes": [3]}}, {"l": None},
        ...                      Trust(0, 0, 1), "pre")
        >>> x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
        >>> scores = scorer.score(7, {"l": x})
        >>> sorted(scores["l"].result.synergy), scores["l"].context["n_neurons"]
        ([3], 5)
    """

    target: Tensor | None
    ties: TiePolicy
    seed: int
    bias_correct: bool
    search_options: Mapping[str, Mapping[str, Any]]
    size_limits: Mapping[str, int | None]
    trust: Trust
    capture: str

    def score(self, step: int, activations: Mapping[str, Tensor]) -> Scores:
        """Score every layer of `activations`; a layer-level problem skips that layer only."""
        scores: Scores = {}
        for name, values in activations.items():
            try:
                scores[name] = self.layer(name, step, values)
            except ValueError as error:
                scores[name] = str(error)
        return scores

    def layer(self, name: str, step: int, values: Tensor) -> LayerScore:
        """Drop dead and duplicated neurons, estimate the copula covariance and search it; then
        the noise of what it found and (when due) the chance level of the search."""
        values = values.reshape(values.shape[0], -1)
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            raise ValueError(f"{int((~finite).sum())} NaN/inf activation(s)")
        neurons = distinct_neurons(values)
        kept = neurons.kept
        if kept.numel() < 3:
            raise ValueError(
                f"only {kept.numel()} distinct non-constant neuron(s); need at least 3 "
                f"({len(neurons.dead)} constant, {len(neurons.duplicates)} duplicated)"
            )
        kept_list = kept.tolist()
        copula = copula_values(values[:, kept], y=self.target, ties=self.ties, seed=self.seed)
        stats = copula.state(bias_correct=self.bias_correct)
        options = {k: v for k, v in self.search_options[name].items() if v is not None}
        limit = self.size_limits[name]
        result = search_covariance(
            stats, index_map=kept_list, seed=self.seed, size_limit=limit, **options
        )
        began = time.perf_counter()
        trust_error = None
        try:
            noise, chance = self.trust.of(
                name, step, copula, kept_list, result, {**options, "size_limit": limit}
            )
        except Exception as error:  # the value stands; only its noise/chance level is missing
            noise, chance, trust_error = None, None, str(error)
        context = {
            "trust_seconds": time.perf_counter() - began,
            "n_neurons": int(values.shape[1]),
            "dead_neurons": len(neurons.dead),
            "duplicate_neurons": len(neurons.duplicates),
            "capture": self.capture,
        }
        return LayerScore(result, context, noise, chance, trust_error)


def problems(step: int, scores: Scores) -> list[tuple[tuple[str, str], str]]:
    """(warning key, message) for each layer skipped at `step` and each failed noise/chance level."""
    found: list[tuple[tuple[str, str], str]] = []
    for name, score in scores.items():
        if isinstance(score, str):
            found.append((("layer", name), f"layer {name!r} skipped at step {step}: {score}"))
        elif score.trust_error is not None:
            message = f"noise/chance of layer {name!r} failed: {score.trust_error}"
            found.append((("trust", name), message))
    return found


def assemble(
    step: int, layers: list[str], scores: Scores, probe_seconds: float, began: float
) -> Evaluation:
    """The `Evaluation` of `step` from every layer's score, in the order of `layers`.

    `began` is the `time.perf_counter()` at which scoring began: the evaluation's seconds are the
    probe's plus the scoring's (a wait in the background queue is not counted).
    """
    evaluation = Evaluation(step, [], {}, probe_seconds=probe_seconds)
    for name in layers:
        score = scores.get(name)
        if score is None:
            continue
        if isinstance(score, str):
            evaluation.skipped[name] = score
            continue
        evaluation.results[name] = score.result
        context = {**score.context, "probe_seconds": probe_seconds}
        evaluation.records.extend(
            records_from_result(step, name, score.result, context, score.noise, score.chance)
        )
    evaluation.summary = headline(evaluation.records)
    evaluation.seconds = probe_seconds + time.perf_counter() - began
    return evaluation
