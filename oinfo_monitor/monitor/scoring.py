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

from oinfo_monitor.estimators import (
    CopulaValues,
    NeuronFilter,
    TiePolicy,
    copula_values,
    distinct_neurons,
)
from oinfo_monitor.monitor.records import Evaluation, headline, records_from_result
from oinfo_monitor.monitor.trust import Trust
from oinfo_monitor.search import SearchResult, search_covariance
from oinfo_monitor.search.uncertainty import ChanceLevels, Noise, SurrogateExtremes, levels_from


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
        flat, neurons = self._filtered(values)
        copula = self._copula(flat, neurons)
        return self._searched(name, step, flat, neurons, copula, with_chance=True)

    def share(
        self,
        step: int,
        owners: Mapping[str, int],
        rank: int,
        ranks: int,
        activations: Mapping[str, Tensor],
    ) -> RankWork:
        """One rank's part of an evaluation split over `ranks`: the layers it owns, scored
        without their chance levels, and its share of every due layer's surrogate searches.

        Every rank filters every layer and counts the evaluation for each before any other work,
        so that all of them agree on which layers are due (their activations are the same), even
        when the work fails; the chance levels are put together by `merge` on rank 0.
        """
        work = RankWork({}, {})
        layers: dict[str, tuple[Tensor, NeuronFilter, bool]] = {}
        for name, values in activations.items():  # every due decision first, counted on every rank
            if owners[name] != rank and not self.trust.surrogates:
                continue  # nothing to do here, and nothing is ever due
            try:
                flat, neurons = self._filtered(values)
            except ValueError as error:
                if owners[name] == rank:
                    work.scores[name] = str(error)
                continue
            count = neurons.kept.numel()
            due = self.trust.due(name, count)
            self.trust.settle(name, count, due)
            layers[name] = (flat, neurons, due)
        for name, (flat, neurons, due) in layers.items():
            owner = owners[name] == rank
            if not (owner or due):
                continue
            copula = self._copula(flat, neurons)
            if owner:
                work.scores[name] = self._searched(name, step, flat, neurons, copula, False)
            if due:
                options = self._options(name)
                try:
                    # Counted from the rank after the owner: an uneven split leaves the owner,
                    # which also searches the layer, the smaller share.
                    index = (rank - owners[name] - 1) % ranks
                    work.surrogates[name] = self.trust.surrogate_share(
                        copula, options, (index, ranks)
                    )
                except Exception as error:  # the value stands; only its chance level is missing
                    work.surrogates[name] = str(error)
        return work

    def merge(self, step: int, works: list[RankWork]) -> Scores:
        """Rank 0: every rank's scores, each with its layer's chance levels, those of the due
        layers put together from every rank's surrogates (as one process would compute them).

        A failed or missing share leaves the layer without chance levels at this evaluation, and
        with its previous ones (if any) until its next due evaluation: every rank has already
        counted this one (`share` settles first), so that the ranks keep agreeing on which
        evaluations are due.
        """
        scores: Scores = {}
        for work in works:
            scores.update(work.scores)
        for name, score in scores.items():
            if isinstance(score, str):
                continue
            parts = [work.surrogates[name] for work in works if name in work.surrogates]
            failed = [part for part in parts if isinstance(part, str)]
            found = {i: e for part in parts if not isinstance(part, str) for i, e in part.items()}
            if parts and not failed and sorted(found) != list(range(self.trust.surrogates)):
                failed = [f"{len(found)} of {self.trust.surrogates} surrogates came back"]
            if failed:
                score.trust_error = score.trust_error or failed[0]
            elif parts:
                self.trust.store(name, step, levels_from(list(found.values())))
            if score.trust_error is None:
                score.chance = self.trust.latest(name)
        return scores

    def _filtered(self, values: Tensor) -> tuple[Tensor, NeuronFilter]:
        """A layer's activations as [samples, neurons] and its dead/duplicate filter; raises
        ValueError for non-finite values or fewer than 3 distinct neurons."""
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
        return values, neurons

    def _copula(self, values: Tensor, neurons: NeuronFilter) -> CopulaValues:
        """The copula values of the kept neurons (and a continuous target)."""
        return copula_values(neurons.columns(values), y=self.target, ties=self.ties, seed=self.seed)

    def _options(self, name: str) -> dict[str, Any]:
        """The layer's search options as the search gets them (unset ones left out, its size
        limit in): the real search's and its surrogates' alike."""
        options = {k: v for k, v in self.search_options[name].items() if v is not None}
        return {**options, "size_limit": self.size_limits[name]}

    def _searched(
        self,
        name: str,
        step: int,
        values: Tensor,
        neurons: NeuronFilter,
        copula: CopulaValues,
        with_chance: bool,
    ) -> LayerScore:
        """Search the layer's copula covariance, then the noise of what it found and, when
        `with_chance` and due, the chance level of the search."""
        kept_list = neurons.kept.tolist()
        stats = copula.state(bias_correct=self.bias_correct)
        options = self._options(name)
        result = search_covariance(stats, index_map=kept_list, seed=self.seed, **options)
        began = time.perf_counter()
        trust_error = None
        chance = None
        try:
            if with_chance:
                noise, chance = self.trust.of(name, step, copula, kept_list, result, options)
            else:
                noise = self.trust.noise(copula, kept_list, result)
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


@dataclass
class RankWork:
    """What one rank sends to rank 0 at a split evaluation (`LayerScorer.share`): the scores of
    its layers, and per due layer its surrogates' extremes by index, or why they failed."""

    scores: Scores
    surrogates: dict[str, dict[int, SurrogateExtremes] | str]


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
