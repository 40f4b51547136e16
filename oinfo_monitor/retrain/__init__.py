"""Test neuron importance by retraining a sub-network chosen by synergy and comparing it with baselines.

O-information ranks groups of neurons from synergistic (Ω < 0) to redundant (Ω > 0), but a
ranking alone does not show that the group matters to the network. Both papers test it the way
the 2022 paper's experiment does (Clauw, Marinazzo & Stramaglia 2022): select a sub-network of a
layer, retrain it (or reset it and retrain it), and compare the loss in accuracy with that of
other selections. The selections compared are the most synergistic multiplet, the most redundant
one, random draws of the same size, the rest of the layer, and the top neurons by single-neuron
mutual information with the labels (the paper's baselines). If synergy marks the neurons that
matter, retraining the synergistic sub-network should cost the least (or, masked, learn best).

Two procedures are offered, one per paper:

- ``"mask"`` (Clauw, Stramaglia & Marinazzo 2024, grokking): start from the run's *initial*
  weights and seed and train for the full schedule while only the selected neurons of a layer are
  active. Every other neuron of that layer is switched off: its incoming weight row is zeroed
  (and, by default, its bias, so the neuron is truly off; ``mask_bias=False`` leaves biases
  alone as the paper did) and held at exactly zero throughout training. The reference is the
  unmasked run with the same initial weights and seed (the original run).
- ``"rewind"`` (Clauw, Marinazzo & Stramaglia 2022, MNIST): start from the *trained* weights,
  reset the selected neurons' own parameters (incoming row and bias) to their initial values and
  retrain them while every other parameter entry of the model stays frozen at its trained value.
  The paper retrains "the sub-network", i.e. the neurons whose pre-activations were measured, so
  the default resets only each neuron's own parameters; ``outgoing=True`` also resets its
  outgoing weights (column j of the next layer) and retrains them. The reference is the trained
  network; the result is the accuracy change after retraining.

The modules, each importable on its own (every public name is also here):

- `oinfo_monitor.retrain.selection`: which neurons to retrain (from a `SearchResult`, a monitor
  history, single-neuron MI, at random; `strategy_selections` builds the standard set);
- `oinfo_monitor.retrain.masks`: switching neurons off (`masked`), resetting them (`rewound`)
  and holding parameter entries fixed while a model trains (`hold_entries`);
- `oinfo_monitor.retrain.procedures`: `retrain` and `rewind_layerwise`, which run the
  procedures for every selection against the reference;
- `oinfo_monitor.retrain.results`: `RunResult` and `RetrainResult` (summary, table, JSON);
- `oinfo_monitor.retrain.training`: ready-made training and evaluation functions;
- `oinfo_monitor.retrain.figures`: accuracy curves and accuracy-change bars of a result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from torch import nn

from oinfo_monitor.retrain.figures import change_figure, curves_figure
from oinfo_monitor.retrain.masks import hold_entries, masked, neuron_masks, rewound
from oinfo_monitor.retrain.procedures import retrain, rewind_layerwise
from oinfo_monitor.retrain.results import RetrainResult, RunResult
from oinfo_monitor.retrain.selection import (
    best_record,
    check_selection,
    complement,
    layer_width,
    random_selections,
    select_from_history,
    select_from_result,
    strategy_selections,
    top_mi,
)
from oinfo_monitor.retrain.training import accuracy_evaluator, epoch_trainer, train_epoch

__all__ = [
    "BeforeStep",
    "EvaluateFn",
    "Kind",
    "Neurons",
    "Procedure",
    "RetrainResult",
    "RunResult",
    "Selection",
    "TrainFn",
    "accuracy_evaluator",
    "best_record",
    "change_figure",
    "check_selection",
    "complement",
    "curves_figure",
    "epoch_trainer",
    "hold_entries",
    "layer_width",
    "masked",
    "neuron_masks",
    "random_selections",
    "retrain",
    "rewind_layerwise",
    "rewound",
    "select_from_history",
    "select_from_result",
    "strategy_selections",
    "top_mi",
    "train_epoch",
]

# The package's vocabulary. The modules use these names only in annotations and import them
# from here under TYPE_CHECKING, so they are defined after the imports above without a cycle.

Neurons = tuple[int, ...]
"""Sorted, distinct neuron (or channel) indices of one layer."""

Selection = Mapping[str, Sequence[int]]
"""Neurons per layer: ``{layer name: neuron indices}``, names as in ``named_modules()``."""

BeforeStep = Callable[[nn.Module, int], None]
"""``before_step(model, step)``: the training function calls it before every training step."""

TrainFn = Callable[[nn.Module, BeforeStep], Any]
"""``train_fn(model, before_step) -> log``: trains in place and returns its accuracy curves.

The log is a mapping or an object with ``steps`` and ``test_acc`` (and optionally ``train_acc``)
sequences, e.g. `oinfo_monitor.experiments.grokking_setup.GrokkingLog`; the global torch RNG is
seeded before it.
"""

EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
"""``evaluate(model) -> {"train": acc, "test": acc, ...}``, run in eval mode without gradients."""

Procedure = Literal["mask", "rewind"]
"""The retraining procedure: the 2024 paper's ``"mask"`` or the 2022 paper's ``"rewind"``."""

Kind = Literal["synergy", "redundancy"]
"""Which extreme multiplet to select: min Ω (``"synergy"``) or max Ω (``"redundancy"``)."""
