"""Test neuron importance by retraining a sub-network chosen by synergy and comparing it with baselines.

Both papers validate O-information by retraining. Two procedures are offered, one per paper:

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

A neuron of ``nn.Linear`` is an output row (``weight[j]``, ``bias[j]``); a channel of
``nn.Conv1d/2d/3d`` is ``weight[j]``, ``bias[j]``. Its outgoing weights are column j of the next
Linear/Conv layer in registration order, which must take exactly the layer's outputs as inputs.

How entries are held fixed (`hold_entries`): gradient hooks zero the gradients of the held
entries (so momentum and Adam moments never see them), and the held values are written back
after every optimizer step (a global optimizer post-step hook, for optimizers that own the
parameters: decoupled weight decay would otherwise shrink them), before every training step
(the ``before_step`` callback handed to the training function, for hand-written update loops)
and on exit. Held entries are therefore bit-identical at every forward pass and at the end.
Every hook is removed on exit, also after an exception. Buffers (e.g. BatchNorm running
statistics) are not held.

Strategies compared (`strategy_selections`): ``synergy`` (the most synergistic multiplet),
``redundancy``, ``complement`` (the rest of the layer), ``random:i`` (seeded draws of the same
size) and the single-neuron MI baselines of the 2022 paper, ``mi_mixture`` and ``mi_model``
(top-k neurons by Gaussian-copula MI with the labels, k = the synergy selection's size).
A label ``name:i`` is draw i of strategy ``name``; `RetrainResult.summary` pools the draws.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import operator
import os
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from oinfo_monitor.estimators.baselines import mi_mixture, mi_model
from oinfo_monitor.estimators.validation import distinct_neurons
from oinfo_monitor.monitor.capture import probe_context, resolve_layers, unwrap_model
from oinfo_monitor.monitor.records import read_records
from oinfo_monitor.search import SearchResult

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
]

Neurons = tuple[int, ...]
"""Sorted, distinct neuron (or channel) indices of one layer."""

Selection = Mapping[str, Sequence[int]]
"""Neurons per layer: ``{layer name: neuron indices}``, names as in ``named_modules()``."""

BeforeStep = Callable[[nn.Module, int], None]
"""``before_step(model, step)``: the training function calls it before every training step."""

TrainFn = Callable[[nn.Module, BeforeStep], Any]
"""``train_fn(model, before_step) -> log``: trains in place and returns its accuracy curves.

The log is a mapping or an object with ``steps`` and ``test_acc`` (and optionally ``train_acc``)
sequences, e.g. `oinfo_monitor.grokking.GrokkingLog`; the global torch RNG is seeded before it.
"""

EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
"""``evaluate(model) -> {"train": acc, "test": acc, ...}``, run in eval mode without gradients."""

Procedure = Literal["mask", "rewind"]
"""The retraining procedure: the 2024 paper's ``"mask"`` or the 2022 paper's ``"rewind"``."""

Kind = Literal["synergy", "redundancy"]
"""Which extreme multiplet to select: min Ω (``"synergy"``) or max Ω (``"redundancy"``)."""

_NEURON_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MI_METHODS = ("mi_mixture", "mi_model")
_KINDS = ("synergy", "redundancy")


# --------------------------------------------------------------------------- selections


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
    if not isinstance(module, _NEURON_LAYERS):
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
    """The neurons of a `width`-neuron layer that are not in `neurons` (sorted)."""
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
    """Members of the most synergistic (or redundant) multiplet of `layer` in a history (see `best_record`)."""
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


# --------------------------------------------------------------------------- masks and holds


def neuron_masks(
    model: nn.Module, selection: Selection, *, bias: bool = True, outgoing: bool = False
) -> dict[str, Tensor]:
    """Boolean masks ``{parameter name: mask}`` marking the parameter entries of the selected neurons.

    A neuron's entries are its incoming row ``weight[j]`` (a conv channel's whole filter), its
    ``bias[j]`` when `bias`, and with `outgoing` column j of the next Linear/Conv layer.
    """
    return _entry_masks(unwrap_model(model), check_selection(model, selection), bias, outgoing)


def _entry_masks(
    model: nn.Module, selection: Mapping[str, Neurons], bias: bool, outgoing: bool
) -> dict[str, Tensor]:
    """Masks of a validated selection (an empty neuron tuple marks nothing)."""
    modules = dict(model.named_modules())
    masks: dict[str, Tensor] = {}
    for layer, neurons in selection.items():
        index = torch.tensor(neurons, dtype=torch.long)
        _mark(masks, layer, modules[layer], "weight", 0, index)
        if bias:
            _mark(masks, layer, modules[layer], "bias", 0, index)
        if outgoing:
            name, following = _next_layer(model, layer)
            _mark(masks, name, following, "weight", 1, index)
    return masks


def _mark(
    masks: dict[str, Tensor], layer: str, module: nn.Module, attr: str, dim: int, index: Tensor
) -> None:
    """Set `index` along `dim` in the mask of ``module.<attr>`` (absent biases are skipped)."""
    param = getattr(module, attr, None)
    if not isinstance(param, Tensor):
        return
    name = f"{layer}.{attr}" if layer else attr
    mask = masks.setdefault(name, torch.zeros_like(param, dtype=torch.bool))
    mask.index_fill_(dim, index.to(param.device), True)


def _next_layer(model: nn.Module, layer: str) -> tuple[str, nn.Module]:
    """The Linear/Conv layer after `layer` in registration order, checked to consume its outputs."""
    chain = [(n, m) for n, m in model.named_modules() if isinstance(m, _NEURON_LAYERS)]
    position = [n for n, _ in chain].index(layer)
    if position + 1 == len(chain):
        raise ValueError(
            f"outgoing=True: layer {layer!r} is the last Linear/Conv layer, so it has no "
            "outgoing weights to reset"
        )
    name, module = chain[position + 1]
    width = layer_width(model, layer)
    inputs = module.in_features if isinstance(module, nn.Linear) else module.in_channels
    if inputs != width or getattr(module, "groups", 1) != 1:
        raise ValueError(
            f"outgoing=True needs the next layer after {layer!r} to take its {width} outputs "
            f"as inputs (ungrouped); {name!r} takes {inputs}: pass outgoing=False"
        )
    return name, module


def _zero_masked_grad(mask: Tensor, grad: Tensor) -> Tensor:
    """Gradient hook: the gradient with the held entries zeroed."""
    return grad.masked_fill(mask, 0)


@contextlib.contextmanager
def hold_entries(model: nn.Module, masks: Mapping[str, Tensor]) -> Iterator[BeforeStep]:
    """Hold the masked parameter entries at their current values while the block trains the model.

    Yields the ``before_step(model, step)`` callback for the training loop. Inside the block the
    held entries' gradients are zeroed by hooks and their values are written back after every
    optimizer step of an optimizer that owns them, at every ``before_step`` call and on exit,
    so they are bit-identical whatever the optimizer (weight decay, momentum). All hooks are
    removed on exit.
    """
    params = dict(unwrap_model(model).named_parameters())
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"masks name unknown parameters {unknown}")
    held = [(params[n], m.to(params[n].device)) for n, m in masks.items() if bool(m.any())]
    saved = [param.detach().clone() for param, _ in held]
    owned = {id(param) for param, _ in held}

    def restore(*_: Any) -> None:
        """Write the held values back."""
        with torch.no_grad():
            for (param, mask), values in zip(held, saved, strict=True):
                param.copy_(torch.where(mask, values, param))

    def after_optimizer_step(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        """Restore after a step of an optimizer that updates any held parameter."""
        if any(id(p) in owned for group in optimizer.param_groups for p in group["params"]):
            restore()

    with contextlib.ExitStack() as stack:
        for param, mask in held:
            if param.requires_grad:
                stack.callback(param.register_hook(partial(_zero_masked_grad, mask)).remove)
        stack.callback(register_optimizer_step_post_hook(after_optimizer_step).remove)
        stack.callback(restore)
        yield restore


@contextlib.contextmanager
def masked(
    model: nn.Module, selection: Selection, *, bias: bool = True, outgoing: bool = False
) -> Iterator[BeforeStep]:
    """Keep only the selected neurons of each named layer active: the others are zeroed and held at 0.

    `bias=False` leaves the switched-off neurons' biases trainable (the 2024 paper's variant: such a
    neuron still emits act(bias)); `outgoing=True` also zeroes their outgoing weights. When the
    block completes, the weights stay as trained under the mask; when it raises, every masked
    parameter gets back the values it had on entry, so a failed run leaves the model intact.
    """
    checked = check_selection(model, selection)
    plain = unwrap_model(model)
    off = {layer: complement(kept, layer_width(plain, layer)) for layer, kept in checked.items()}
    masks = _entry_masks(plain, off, bias, outgoing)
    params = dict(plain.named_parameters())
    saved = {name: params[name].detach().clone() for name in masks}
    completed = False
    try:
        with torch.no_grad():
            for name, mask in masks.items():
                params[name].masked_fill_(mask, 0)
        with hold_entries(plain, masks) as before_step:
            yield before_step
        completed = True
    finally:
        if not completed:
            with torch.no_grad():
                for name, values in saved.items():
                    params[name].copy_(values)


@contextlib.contextmanager
def rewound(
    model: nn.Module,
    selection: Selection,
    initial_state: Mapping[str, Tensor],
    *,
    outgoing: bool = False,
) -> Iterator[BeforeStep]:
    """Reset the selected neurons to `initial_state` and hold every other parameter entry where it is.

    The selected neurons' rows and biases (and with `outgoing` their outgoing columns) are the
    only entries that training can change inside the block.
    """
    plain = unwrap_model(model)
    masks = _entry_masks(plain, check_selection(plain, selection), True, outgoing)
    params = dict(plain.named_parameters())
    missing = sorted(set(masks) - set(initial_state))
    if missing:
        raise ValueError(f"initial_state lacks the parameter(s) {missing}")
    with torch.no_grad():
        for name, mask in masks.items():
            start = initial_state[name].to(params[name])
            params[name].copy_(torch.where(mask, start, params[name]))
    frozen = {
        name: ~masks[name] if name in masks else torch.ones_like(param, dtype=torch.bool)
        for name, param in params.items()
    }
    with hold_entries(plain, frozen) as before_step:
        yield before_step


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunResult:
    """One training run of a comparison: its neurons, accuracy curves and final accuracies.

    ``final`` holds what the evaluation function returned (or the curves' last points),
    ``change`` the difference to the reference's ``final`` for every shared key, and
    ``steps_to_grok`` the first step with test accuracy above the threshold (None: never).
    """

    neurons: dict[str, list[int]]
    steps: list[int]
    train_acc: list[float]
    test_acc: list[float]
    final: dict[str, float]
    change: dict[str, float] = field(default_factory=dict)
    steps_to_grok: int | None = None


@dataclass(frozen=True)
class RetrainResult:
    """The outcome of `retrain`: the reference run and one `RunResult` per strategy label."""

    procedure: str
    seed: int
    reference: RunResult
    runs: dict[str, RunResult]
    options: dict[str, Any] = field(default_factory=dict)

    def groups(self) -> dict[str, list[str]]:
        """Labels per strategy, pooling the draws ``name:i`` of a strategy under ``name``."""
        out: dict[str, list[str]] = {}
        for label in self.runs:
            out.setdefault(label.split(":")[0], []).append(label)
        return out

    def summary(self, metric: str = "test") -> list[dict[str, Any]]:
        """Per strategy: runs, size, mean/std of the final `metric` and of its change, grokking counts."""
        return [self._summarise(name, labels, metric) for name, labels in self.groups().items()]

    def _summarise(self, name: str, labels: list[str], metric: str) -> dict[str, Any]:
        """One summary row over the runs `labels` of strategy `name`."""
        runs = [self.runs[label] for label in labels]
        grok = [run.steps_to_grok for run in runs if run.steps_to_grok is not None]
        final = [run.final[metric] for run in runs if metric in run.final]
        change = [run.change[metric] for run in runs if metric in run.change]
        return {
            "strategy": name,
            "runs": len(runs),
            "size": sum(len(v) for v in runs[0].neurons.values()),
            "final_mean": _mean(final),
            "final_std": _std(final),
            "change_mean": _mean(change),
            "change_std": _std(change),
            "grokked": len(grok),
            "steps_to_grok_mean": _mean([float(s) for s in grok]),
        }

    def format_table(self, metric: str = "test") -> str:
        """The summary as a text table, reference first; grokking columns for the mask procedure."""
        grok = self.procedure == "mask"
        ref = self.reference
        header = ["strategy", "runs", "size", f"{metric} acc", "change"]
        rows = [["reference", "1", "-", _fmt(ref.final.get(metric), None), "-"]]
        if grok:
            header += ["grokked", "grok step (mean)"]
            rows[0] += [f"{int(ref.steps_to_grok is not None)}/1", _fmt(ref.steps_to_grok, None, 0)]
        for row in self.summary(metric):
            cells = [row["strategy"], str(row["runs"]), str(row["size"])]
            cells += [_fmt(row["final_mean"], row["final_std"])]
            cells += [_fmt(row["change_mean"], row["change_std"], sign=True)]
            if grok:
                cells += [
                    f"{row['grokked']}/{row['runs']}",
                    _fmt(row["steps_to_grok_mean"], None, 0),
                ]
            rows.append(cells)
        widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
            for line in [header, *rows]
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe nested dicts and lists."""
        return {
            "procedure": self.procedure,
            "seed": self.seed,
            "options": dict(self.options),
            "reference": asdict(self.reference),
            "runs": {label: asdict(run) for label, run in self.runs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainResult:
        """Rebuild a result saved with `to_dict`."""
        return cls(
            procedure=data["procedure"],
            seed=int(data["seed"]),
            reference=RunResult(**data["reference"]),
            runs={label: RunResult(**run) for label, run in data["runs"].items()},
            options=dict(data.get("options", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict` as a JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")


def _mean(values: Sequence[float]) -> float | None:
    """Mean, or None for no values."""
    return statistics.fmean(values) if values else None


def _std(values: Sequence[float]) -> float | None:
    """Sample standard deviation, or None for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else None


def _fmt(value: float | None, spread: float | None, digits: int = 3, sign: bool = False) -> str:
    """A number with optional ± spread, or '-' for None."""
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text if spread is None else f"{text} ±{spread:.{digits}f}"


def _curve(log: Any) -> tuple[list[int], list[float], list[float]]:
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


def _fresh(model: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    """A new model instance: a deep copy of a module, or a call of a factory."""
    made = copy.deepcopy(model) if isinstance(model, nn.Module) else model()
    if not isinstance(made, nn.Module):
        raise ValueError(f"the model factory must return an nn.Module, got {type(made).__name__}")
    return made


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
    model = _fresh(setup.model)
    unwrap_model(model).load_state_dict(dict(state))
    with hold(model) as before_step:
        torch.manual_seed(setup.seed)
        steps, train, test = _curve(setup.train_fn(model, before_step))
    final = _final(model, setup.evaluate, train, test)
    return _result(setup, neurons, (steps, train, test), final, reference)


def _result(
    setup: _Setup,
    neurons: Mapping[str, Neurons],
    curves: tuple[list[int], list[float], list[float]],
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


def _trained_reference(setup: _Setup, trained_state: Mapping[str, Tensor]) -> RunResult:
    """The rewind reference: the trained network evaluated as it is (no curves)."""
    model = _fresh(setup.model)
    unwrap_model(model).load_state_dict(dict(trained_state))
    return _result(setup, {}, ([], [], []), _final(model, setup.evaluate, [], []), None)


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


def _compare(
    setup: _Setup, selections: Mapping[str, Selection], start: Mapping[str, Tensor]
) -> RetrainResult:
    """The body of `retrain`: check every selection, then the reference run and one run per label."""
    probe = unwrap_model(_fresh(setup.model))
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


# --------------------------------------------------------------------------- simple training


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> float:
    """Classification accuracy of `model` on (x, y), in batches, without gradients."""
    with torch.no_grad():
        hits = sum(
            int((model(xb).argmax(1) == yb).sum())
            for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
        )
    return hits / max(1, len(y))


def accuracy_evaluator(
    splits: Mapping[str, tuple[Tensor, Tensor]], batch_size: int = 4096
) -> EvaluateFn:
    """An `EvaluateFn` returning the classification accuracy on each named (inputs, labels) split."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        """Accuracy per split."""
        return {name: _accuracy(model, x, y, batch_size) for name, (x, y) in splits.items()}

    return evaluate


def epoch_trainer(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
) -> TrainFn:
    """A `TrainFn` for classifiers: AdamW over shuffled mini-batches for `epochs` epochs.

    Accuracy on the train and test splits is logged at step 0 and after every epoch (``steps``
    count optimizer updates); shuffling uses the global torch RNG, which `retrain` seeds.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    x, y = train

    def train_fn(model: nn.Module, before_step: BeforeStep) -> dict[str, list[float]]:
        """Train `model` in place and return its accuracy curves."""
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        log: dict[str, list[float]] = {"steps": [], "train_acc": [], "test_acc": []}
        step = 0
        for epoch in range(epochs + 1):
            if epoch:
                step = train_epoch(
                    model, optimizer, (x, y), batch_size, step, before_step=before_step
                )
            with probe_context(model):
                log["steps"].append(step)
                log["train_acc"].append(_accuracy(model, x, y, 4096))
                log["test_acc"].append(_accuracy(model, *test, 4096))
        return log

    return train_fn


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[Tensor, Tensor],
    batch_size: int,
    step: int = 0,
    *,
    before_step: BeforeStep | None = None,
    after_step: Callable[[int], None] | None = None,
    stop: int | None = None,
) -> int:
    """One shuffled epoch of cross-entropy updates, ending early at step `stop`; returns the step count.

    `before_step(model, step)` runs under no_grad before each update (the hook that holds masked or
    frozen weights), `after_step(step)` after it (e.g. a monitor). Shuffling uses the global torch RNG.
    """
    x, y = data
    model.train()
    for batch in torch.randperm(len(y)).split(batch_size):
        if before_step is not None:
            with torch.no_grad():
                before_step(model, step)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if after_step is not None:
            after_step(step)
        if step == stop:
            break
    return step


# --------------------------------------------------------------------------- figures


def curves_figure(result: RetrainResult, title: str = "", metric: str = "test_acc") -> Figure:
    """Accuracy over training per strategy (the 2024 paper's Figs 6-7 layout).

    A strategy with several draws is drawn as its mean with a min-max band; the reference (the
    unmasked original run) is the dashed black line.
    """
    figure = Figure(figsize=(7.0, 4.2), layout="constrained")
    axis = figure.subplots()
    ref = result.reference
    if ref.steps:
        axis.plot(ref.steps, getattr(ref, metric), "k--", linewidth=1.2, label="full network")
    for name, labels in result.groups().items():
        runs = [result.runs[label] for label in labels]
        curves = torch.tensor([getattr(run, metric) for run in runs], dtype=torch.float64)
        steps = runs[0].steps
        (line,) = axis.plot(steps, curves.mean(0).tolist(), label=f"{name} (n={len(runs)})")
        if len(runs) > 1:
            low, high = curves.min(0).values.tolist(), curves.max(0).values.tolist()
            axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    axis.set_xlabel("training step")
    axis.set_ylabel(metric.replace("_acc", " accuracy"))
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize="small")
    axis.set_title(title or f"retraining sub-networks ({result.procedure}, seed {result.seed})")
    return figure


def change_figure(result: RetrainResult, title: str = "", metric: str = "test") -> Figure:
    """Bars of the accuracy change per layer and strategy, mean ± std over draws (the 2022 paper's Fig. 2).

    Strategy names ``"<layer>/<strategy>"`` (as `rewind_layerwise` makes them) are grouped by layer.
    """
    cells = {_split_label(row["strategy"]): row for row in result.summary(metric)}
    layers = list(dict.fromkeys(layer for layer, _ in cells))
    strategies = list(dict.fromkeys(strategy for _, strategy in cells))
    figure = Figure(figsize=(2.0 + 0.5 * len(cells), 4.0), layout="constrained")
    axis = figure.subplots()
    width = 0.8 / len(strategies)
    for offset, strategy in enumerate(strategies):
        rows = [cells.get((layer, strategy), {}) for layer in layers]
        axis.bar(
            [i - 0.4 + (offset + 0.5) * width for i in range(len(layers))],
            [row.get("change_mean") or 0.0 for row in rows],
            width,
            yerr=[row.get("change_std") or 0.0 for row in rows],
            label=strategy,
            capsize=2,
        )
    axis.axhline(0.0, color="black", linewidth=0.6)
    axis.set_xticks(range(len(layers)), [layer or "layer" for layer in layers])
    axis.set_ylabel(f"{metric} accuracy change vs reference")
    axis.legend(fontsize="small")
    axis.set_title(title or f"accuracy change after retraining ({result.procedure})")
    return figure


def _split_label(name: str) -> tuple[str, str]:
    """(layer, strategy) of a strategy name ``"<layer>/<strategy>"`` (layer '' when absent)."""
    layer, _, strategy = name.rpartition("/")
    return layer, strategy
