"""Choose the neurons to retrain: from a search result, a monitor history, single-neuron MI or at random.

A selection is ``{layer name: neuron indices}`` (`Selection`); a neuron of ``nn.Linear`` is an
output, a channel of ``nn.Conv1d/2d/3d`` an output channel (`NEURON_LAYERS`). `check_selection`
validates a selection against a model and sorts it.

Strategies compared (`strategy_selections`): ``synergy`` (the most synergistic multiplet),
``redundancy``, ``complement`` (the rest of the layer), ``random:i`` (seeded draws of the same
size) and the single-neuron MI baselines of the 2022 paper, ``mi_mixture`` and ``mi_model``
(top-k neurons by Gaussian-copula MI with the labels, k = the synergy selection's size).
A label ``name:i`` is draw i of strategy ``name``; `RetrainResult.summary` pools the draws.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from oinfo_monitor.estimators.baselines import mi_mixture, mi_model
from oinfo_monitor.estimators.validation import distinct_neurons
from oinfo_monitor.monitor.capture import resolve_layers
from oinfo_monitor.monitor.records import read_records
from oinfo_monitor.search import SearchResult

if TYPE_CHECKING:
    from oinfo_monitor.retrain import Kind, Neurons, Selection

__all__ = [
    "NEURON_LAYERS",
    "best_record",
    "check_selection",
    "complement",
    "layer_width",
    "random_selections",
    "select_from_history",
    "select_from_result",
    "strategy_selections",
    "top_mi",
]

NEURON_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""The layer types whose neurons (Linear output rows, Conv output channels) can be selected."""

_MI_METHODS = ("mi_mixture", "mi_model")
_KINDS = ("synergy", "redundancy")


def layer_width(model: nn.Module, layer: str) -> int:
    """Number of neurons (Linear outputs) or channels (Conv outputs) of a named layer.

    Raises:
        ValueError: the name is unknown (with close matches) or not a Linear/Conv1d/2d/3d layer.
    """
    module = _neuron_layer(model, layer)
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _neuron_layer(model: nn.Module, layer: str) -> nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d:
    """The Linear/Conv module called `layer` in the unwrapped model."""
    if not isinstance(layer, str):
        raise ValueError(f"layer names must be strings, got {layer!r}")
    module = resolve_layers(model, [layer])[layer]
    if not isinstance(module, NEURON_LAYERS):
        raise ValueError(
            f"layer {layer!r} is a {type(module).__name__}; neurons can be selected only in "
            "nn.Linear (output rows) and nn.Conv1d/2d/3d (output channels) layers"
        )
    return module


def _check_neurons(neurons: Iterable[Any], width: int, layer: str) -> Neurons:
    """Validate neuron indices of a layer with `width` neurons and return them sorted."""
    values = [_index(n, layer) for n in neurons]
    if not values:
        raise ValueError(f"empty selection for layer {layer!r}: pass at least one neuron index")
    bad = [n for n in values if not 0 <= n < width]
    if bad:
        raise ValueError(
            f"neuron index {bad[0]} is out of range for layer {layer!r}, which has {width} "
            f"neurons (valid indices: 0..{width - 1})"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"the selection for layer {layer!r} repeats a neuron index: {values}")
    return tuple(sorted(values))


def _index(value: Any, layer: str) -> int:
    """One neuron index as an int (integers, numpy integers, 0-d integer tensors; not bools)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise ValueError(
            f"neuron indices of layer {layer!r} must be integers, got {value!r}"
        ) from None


def check_selection(model: nn.Module, selection: Selection) -> dict[str, Neurons]:
    """Validate a per-layer selection against the model and return it with sorted indices.

    Raises:
        ValueError: no layers, an unknown or non-Linear/Conv layer, an empty, repeated or
            out-of-range neuron list.
    """
    if not isinstance(selection, Mapping) or not selection:
        raise ValueError(
            "empty selection: pass {layer name: [neuron indices]} with at least one layer"
        )
    return {
        layer: _check_neurons(neurons, layer_width(model, layer), layer)
        for layer, neurons in selection.items()
    }


def complement(neurons: Sequence[int], width: int) -> Neurons:
    """The neurons of a `width`-neuron layer that are not in `neurons` (sorted).

    Examples:
        >>> complement([4, 1], width=6)
        (0, 2, 3, 5)
    """
    chosen = set(_check_neurons(neurons, width, "<layer>"))
    return tuple(n for n in range(width) if n not in chosen)


def random_selections(width: int, size: int, draws: int, seed: int = 0) -> list[Neurons]:
    """`draws` uniformly random `size`-neuron subsets of a `width`-neuron layer, deterministic in `seed`."""
    if not 0 < size <= width:
        raise ValueError(f"size must lie in 1..{width} (the layer's width), got {size}")
    if draws < 0:
        raise ValueError(f"draws must be >= 0, got {draws}")
    generator = torch.Generator().manual_seed(seed)
    return [
        tuple(sorted(torch.randperm(width, generator=generator)[:size].tolist()))
        for _ in range(draws)
    ]


def top_mi(
    activations: Tensor,
    labels: Tensor,
    k: int,
    *,
    method: str = "mi_mixture",
    seed: int = 0,
) -> Neurons:
    """The `k` neurons (columns of `activations`) with the highest single-neuron MI with `labels`.

    MI is one of the 2022 paper's baselines, `baselines.mi_mixture` or `baselines.mi_model` (its
    copula ties broken at random with `seed`); constant (dead) neurons carry no information and
    rank last. Pass continuous activations (pre-activations, as the paper did): the mixture model
    rejects a neuron that is constant within a class, e.g. a ReLU output silent for a whole class.
    """
    if method not in _MI_METHODS:
        raise ValueError(f"method must be one of {list(_MI_METHODS)}, got {method!r}")
    values = torch.as_tensor(activations).detach().double().cpu()
    if values.ndim != 2:
        raise ValueError(f"activations must be [samples, neurons], got {tuple(values.shape)}")
    alive = distinct_neurons(values).alive
    if not 0 < k <= alive.numel():
        raise ValueError(
            f"k must lie in 1..{alive.numel()} (the non-constant neurons of {values.shape[1]}), got {k}"
        )
    scores = torch.full((values.shape[1],), -math.inf, dtype=torch.float64)
    live = values[:, alive]
    mi = mi_mixture(live, labels) if method == "mi_mixture" else mi_model(live, labels, seed=seed)
    scores[alive] = mi.cpu()
    return tuple(sorted(torch.topk(scores, k).indices.tolist()))


def select_from_result(
    result: SearchResult, *, size: int | None = None, kind: Kind = "synergy"
) -> Neurons:
    """Members of a `SearchResult`'s most synergistic (or redundant) multiplet, overall or at `size`."""
    _check_kind(kind)
    if size is None:
        best = result.most_synergistic() if kind == "synergy" else result.most_redundant()
        return tuple(sorted(best.members))
    table = result.synergy if kind == "synergy" else result.redundancy
    if size not in table:
        raise ValueError(f"the search result has no size {size}; searched sizes: {sorted(table)}")
    return tuple(sorted(table[size].members))


def _check_kind(kind: str) -> None:
    """Reject a multiplet kind other than synergy/redundancy."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'synergy' or 'redundancy', got {kind!r}")


def best_record(
    records: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    layer: str,
    *,
    step: int | None = None,
    size: int | None = None,
    kind: Kind = "synergy",
) -> dict[str, Any]:
    """The history record of `layer` with the most synergistic (min Ω) or redundant (max Ω) multiplet.

    `records` are monitor history records or the path of a JSONL history file. ``step=None``
    searches the whole run, otherwise only that evaluation step; ``size=None`` every size.
    """
    _check_kind(kind)
    rows = _read(records)
    candidates = _filter(rows, "layer", layer, "layers")
    if step is not None:
        candidates = _filter(candidates, "step", step, f"steps of layer {layer!r}")
    if size is not None:
        candidates = _filter(candidates, "size", size, "sizes")
    pick = min if kind == "synergy" else max
    return dict(pick(candidates, key=lambda row: float(row[kind])))


def _read(records: Iterable[Mapping[str, Any]] | str | os.PathLike[str]) -> list[Mapping[str, Any]]:
    """History records as a list, read from a JSONL file when given a path."""
    if isinstance(records, str | os.PathLike):
        return list(read_records(records))
    return list(records)


def _filter(
    rows: list[Mapping[str, Any]], key: str, value: Any, what: str
) -> list[Mapping[str, Any]]:
    """The rows whose `key` equals `value`, or a ValueError listing the values available."""
    kept = [row for row in rows if row.get(key) == value]
    if not kept:
        available = sorted({row.get(key) for row in rows}, key=lambda v: (type(v).__name__, v))
        shown = ", ".join(map(repr, available[:20])) + (" ..." if len(available) > 20 else "")
        raise ValueError(f"no history record with {key} {value!r}; available {what}: {shown}")
    return kept


def select_from_history(
    records: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    layer: str,
    *,
    step: int | None = None,
    size: int | None = None,
    kind: Kind = "synergy",
) -> Neurons:
    """Members of the most synergistic (or redundant) multiplet of `layer` in a history (see `best_record`).

    Examples:
        >>> history = [
        ...     {"layer": "fc1", "step": 10, "size": 3, "synergy": -0.2, "synergy_members": [4, 0, 7]},
        ...     {"layer": "fc1", "step": 20, "size": 3, "synergy": -0.5, "synergy_members": [2, 5, 1]},
        ...     {"layer": "fc2", "step": 20, "size": 3, "synergy": -0.9, "synergy_members": [0, 1, 2]},
        ... ]
        >>> select_from_history(history, "fc1")
        (1, 2, 5)
        >>> select_from_history(history, "fc1", step=10)
        (0, 4, 7)
    """
    record = best_record(records, layer, step=step, size=size, kind=kind)
    return tuple(sorted(int(n) for n in record[f"{kind}_members"]))


def strategy_selections(
    width: int,
    synergy: Sequence[int],
    *,
    redundancy: Sequence[int] | None = None,
    random_draws: int = 3,
    seed: int = 0,
    activations: Tensor | None = None,
    labels: Tensor | None = None,
) -> dict[str, Neurons]:
    """The neurons each strategy picks in one `width`-neuron layer, keyed by strategy label.

    Always ``synergy``, ``complement`` and ``random:0`` .. ``random:{random_draws-1}`` (same size
    as the synergy selection); ``redundancy`` when given; ``mi_mixture`` and ``mi_model`` (top-k
    by MI with the labels, k = the synergy size) when `activations` [samples, width] and `labels`
    are given.
    """
    chosen = _check_neurons(synergy, width, "<synergy>")
    out: dict[str, Neurons] = {"synergy": chosen}
    if redundancy is not None:
        out["redundancy"] = _check_neurons(redundancy, width, "<redundancy>")
    out["complement"] = complement(chosen, width)
    for draw, neurons in enumerate(random_selections(width, len(chosen), random_draws, seed)):
        out[f"random:{draw}"] = neurons
    if (activations is None) != (labels is None):
        raise ValueError("the MI baselines need both activations and labels (or neither)")
    if activations is not None and labels is not None:
        if activations.shape[-1] != width:
            raise ValueError(f"activations have {activations.shape[-1]} neurons, expected {width}")
        for method in _MI_METHODS:
            out[method] = top_mi(activations, labels, len(chosen), method=method, seed=seed)
    return out
