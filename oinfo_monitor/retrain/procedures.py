"""The two retraining procedures, run for every selection and compared with a reference.

- ``"mask"`` (Clauw, Stramaglia & Marinazzo 2024, grokking): start from the run's *initial*
  weights and seed and train for the full schedule while only the selected neurons of a layer are
  active (`masked`). The reference is the unmasked run with the same initial weights and seed.
- ``"rewind"`` (Clauw, Marinazzo & Stramaglia 2022, MNIST): start from the *trained* weights,
  reset the selected neurons' own parameters to their initial values and retrain them while every
  other parameter entry stays frozen (`rewound`). The reference is the trained network; the
  result is the accuracy change after retraining. `rewind_layerwise` runs it for every layer and
  strategy of a trained model (the 2022 paper's Figure 2).

Every run starts from the same state with the same global torch seed, so the same inputs give
the same `RetrainResult`; the caller's RNG state is restored afterwards.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from oinfo_monitor.monitor.capture import probe_context, unwrap_model
from oinfo_monitor.retrain.masks import masked, rewound
from oinfo_monitor.retrain.results import RetrainResult, RunResult
from oinfo_monitor.retrain.selection import check_selection

if TYPE_CHECKING:
    from oinfo_monitor.retrain import (
        BeforeStep,
        EvaluateFn,
        Neurons,
        Procedure,
        Selection,
        TrainFn,
    )

__all__ = ["retrain", "rewind_layerwise"]

_Curves = tuple[list[int], list[float], list[float]]


def retrain(
    model: nn.Module | Callable[[], nn.Module],
    train_fn: TrainFn,
    selections: Mapping[str, Selection],
    *,
    initial_state: Mapping[str, Tensor],
    procedure: Procedure = "mask",
    trained_state: Mapping[str, Tensor] | None = None,
    evaluate: EvaluateFn | None = None,
    mask_bias: bool = True,
    outgoing: bool = False,
    seed: int = 0,
    grok_threshold: float = 0.98,
) -> RetrainResult:
    """Retrain one sub-network per strategy label and compare each with the reference.

    Args:
        model: a module (deep-copied for every run, never changed) or a factory of fresh ones.
        train_fn: ``train_fn(model, before_step) -> log`` (see `TrainFn`); it must call
            ``before_step(model, step)`` before every training step.
        selections: ``{label: {layer: neurons}}``, e.g. built from `strategy_selections`; labels
            ``name:i`` are draws of one strategy.
        initial_state: the state dict at initialisation (``init.pt``).
        procedure: ``"mask"``: train from `initial_state` with only the selected neurons active,
            against the unmasked run; ``"rewind"``: reset the selected neurons of the trained
            network to `initial_state` and retrain only them, against the trained network.
        trained_state: the trained state dict (``"rewind"`` only, required there).
        evaluate: final accuracies (``"rewind"``: required); None: the curves' last points.
        mask_bias: ``"mask"``: also zero the switched-off neurons' biases (truly off).
        outgoing: also mask/rewind the neurons' outgoing weights (next layer's columns).
        seed: the global torch seed set before every run; the caller's RNG state is restored.
        grok_threshold: steps to grok = first step with test accuracy above this.

    Returns:
        A `RetrainResult`; the same seed and inputs give the same result.
    """
    if procedure not in ("mask", "rewind"):
        raise ValueError(f"procedure must be 'mask' or 'rewind', got {procedure!r}")
    if not selections:
        raise ValueError("selections is empty: pass {label: {layer: [neurons]}}")
    if not 0.0 < grok_threshold <= 1.0:
        raise ValueError(f"grok_threshold must lie in (0, 1], got {grok_threshold}")
    if procedure == "rewind" and (trained_state is None or evaluate is None):
        raise ValueError(
            "procedure='rewind' needs trained_state=... (the trained state dict) and "
            "evaluate=... (to measure the trained network it is compared with)"
        )
    setup = _Setup(
        model,
        train_fn,
        evaluate,
        procedure,
        initial_state,
        mask_bias,
        outgoing,
        seed,
        grok_threshold,
    )
    start = trained_state if trained_state is not None and procedure == "rewind" else initial_state
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        return _compare(setup, selections, start)


def rewind_layerwise(
    model: nn.Module,
    initial_state: Mapping[str, Tensor],
    train_fn: TrainFn,
    evaluate: EvaluateFn,
    layer_strategies: Mapping[str, Mapping[str, Sequence[int]]],
    *,
    outgoing: bool = False,
    seed: int = 0,
) -> RetrainResult:
    """The 2022 paper's Figure 2 test on a trained model: rewind and retrain each layer's selections.

    `layer_strategies` is ``{layer: {strategy label: neurons}}`` (e.g. `strategy_selections` per
    layer); every (layer, strategy) is one rewind run labelled ``"<layer>/<strategy>"``, and its
    accuracy change is measured against the trained `model` (left unchanged).
    """
    selections = {
        f"{layer}/{label}": {layer: neurons}
        for layer, strategies in layer_strategies.items()
        for label, neurons in strategies.items()
    }
    trained = {k: v.detach().clone() for k, v in unwrap_model(model).state_dict().items()}
    return retrain(
        model,
        train_fn,
        selections,
        initial_state=initial_state,
        procedure="rewind",
        trained_state=trained,
        evaluate=evaluate,
        outgoing=outgoing,
        seed=seed,
    )


@dataclass(frozen=True)
class _Setup:
    """What every run of one comparison shares."""

    model: nn.Module | Callable[[], nn.Module]
    train_fn: TrainFn
    evaluate: EvaluateFn | None
    procedure: Procedure
    initial_state: Mapping[str, Tensor]
    mask_bias: bool
    outgoing: bool
    seed: int
    grok_threshold: float

    def hold(
        self, selection: Selection
    ) -> Callable[[nn.Module], contextlib.AbstractContextManager[BeforeStep]]:
        """The context that applies the procedure to one selection of a model."""
        if self.procedure == "mask":
            return partial(masked, selection=selection, bias=self.mask_bias, outgoing=self.outgoing)
        return partial(
            rewound, selection=selection, initial_state=self.initial_state, outgoing=self.outgoing
        )

    def fresh(self, state: Mapping[str, Tensor] | None = None) -> nn.Module:
        """A new model instance (a deep copy of the module, or a call of the factory), loaded with `state` if given."""
        made = copy.deepcopy(self.model) if isinstance(self.model, nn.Module) else self.model()
        if not isinstance(made, nn.Module):
            raise ValueError(
                f"the model factory must return an nn.Module, got {type(made).__name__}"
            )
        if state is not None:
            unwrap_model(made).load_state_dict(dict(state))
        return made


def _compare(
    setup: _Setup, selections: Mapping[str, Selection], start: Mapping[str, Tensor]
) -> RetrainResult:
    """The body of `retrain`: check every selection, then the reference run and one run per label."""
    probe = unwrap_model(setup.fresh())
    checked = {label: check_selection(probe, sel) for label, sel in selections.items()}
    if setup.procedure == "mask":
        reference = _run(setup, start, _no_hold, {}, None)
    else:
        reference = _trained_reference(setup, start)
    runs = {
        label: _run(setup, start, setup.hold(sel), sel, reference) for label, sel in checked.items()
    }
    options = {
        "mask_bias": setup.mask_bias,
        "outgoing": setup.outgoing,
        "grok_threshold": setup.grok_threshold,
    }
    return RetrainResult(setup.procedure, setup.seed, reference, runs, options)


def _no_hold(model: nn.Module) -> contextlib.AbstractContextManager[BeforeStep]:
    """A context that holds nothing (the reference run)."""
    return contextlib.nullcontext(_ignore_step)


def _ignore_step(model: nn.Module, step: int) -> None:
    """A before_step callback that does nothing."""


def _run(
    setup: _Setup,
    state: Mapping[str, Tensor],
    hold: Callable[[nn.Module], contextlib.AbstractContextManager[BeforeStep]],
    neurons: Mapping[str, Neurons],
    reference: RunResult | None,
) -> RunResult:
    """Train a fresh model from `state` under `hold` with the shared seed, and summarise the run."""
    model = setup.fresh(state)
    with hold(model) as before_step:
        torch.manual_seed(setup.seed)
        steps, train, test = _curve(setup.train_fn(model, before_step))
    final = _final(model, setup.evaluate, train, test)
    return _result(setup, neurons, (steps, train, test), final, reference)


def _trained_reference(setup: _Setup, trained_state: Mapping[str, Tensor]) -> RunResult:
    """The rewind reference: the trained network evaluated as it is (no curves)."""
    model = setup.fresh(trained_state)
    return _result(setup, {}, ([], [], []), _final(model, setup.evaluate, [], []), None)


def _result(
    setup: _Setup,
    neurons: Mapping[str, Neurons],
    curves: _Curves,
    final: dict[str, float],
    reference: RunResult | None,
) -> RunResult:
    """Assemble a `RunResult`, with the change against `reference` when there is one."""
    steps, train, test = curves
    base = reference.final if reference is not None else {}
    return RunResult(
        neurons={layer: list(n) for layer, n in neurons.items()},
        steps=steps,
        train_acc=train,
        test_acc=test,
        final=final,
        change={key: final[key] - base[key] for key in final if key in base},
        steps_to_grok=_grok_step(steps, test, setup.grok_threshold),
    )


def _curve(log: Any) -> _Curves:
    """Steps, train and test accuracy read from a training log (mapping or attributes)."""

    def get(name: str) -> list[Any]:
        """One curve of the log, empty when absent."""
        value = log.get(name) if isinstance(log, Mapping) else getattr(log, name, None)
        return [] if value is None else list(value)

    steps, train, test = get("steps"), get("train_acc"), get("test_acc")
    if len(test) != len(steps) or (train and len(train) != len(steps)):
        raise ValueError(
            "train_fn must return a log with equally long 'steps', 'test_acc' (and optionally "
            f"'train_acc') curves; got lengths {len(steps)}, {len(test)}, {len(train)}"
        )
    return [int(s) for s in steps], [float(a) for a in train], [float(a) for a in test]


def _grok_step(steps: list[int], test: list[float], threshold: float) -> int | None:
    """First step with test accuracy above `threshold`, or None."""
    return next((s for s, acc in zip(steps, test, strict=True) if acc > threshold), None)


def _final(
    model: nn.Module, evaluate: EvaluateFn | None, train: list[float], test: list[float]
) -> dict[str, float]:
    """Final accuracies: `evaluate` in eval mode without gradients, else the curves' last points."""
    if evaluate is not None:
        with probe_context(model):
            return {key: float(value) for key, value in evaluate(model).items()}
    if not test:
        raise ValueError("no evaluate function and an empty test_acc curve: nothing to report")
    return {"test": test[-1], **({"train": train[-1]} if train else {})}
