"""Switch neurons off or reset them, and hold parameter entries fixed while the model trains.

A neuron of ``nn.Linear`` is an output row (``weight[j]``, ``bias[j]``); a channel of
``nn.Conv1d/2d/3d`` is ``weight[j]``, ``bias[j]``. Its outgoing weights are column j of the next
Linear/Conv layer in registration order, which must take exactly the layer's outputs as inputs.
`neuron_masks` marks these entries; `masked` (the 2024 paper's procedure) and `rewound` (the
2022 paper's) apply a selection to a model for the duration of a ``with`` block.

How entries are held fixed (`hold_entries`): gradient hooks zero the gradients of the held
entries (so momentum and Adam moments never see them), and the held values are written back
after every optimizer step (a global optimizer post-step hook, for optimizers that own the
parameters: decoupled weight decay would otherwise shrink them), before every training step
(the ``before_step`` callback handed to the training function, for hand-written update loops)
and on exit. Held entries are therefore bit-identical at every forward pass and at the end.
Every hook is removed on exit, also after an exception. Buffers (e.g. BatchNorm running
statistics) are not held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from oinfo_monitor.monitor.capture import unwrap_model
from oinfo_monitor.retrain.selection import (
    NEURON_LAYERS,
    check_selection,
    complement,
    layer_width,
)

if TYPE_CHECKING:
    from oinfo_monitor.retrain import BeforeStep, Neurons, Selection

__all__ = ["hold_entries", "masked", "neuron_masks", "rewound"]


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
    chain = [(n, m) for n, m in model.named_modules() if isinstance(m, NEURON_LAYERS)]
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

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
        >>> with masked(model, {"0": [1, 3]}) as before_step:  # neurons 0 and 2 switched off
        ...     for step in range(3):
        ...         before_step(model, step)
        ...         optimizer.zero_grad()
        ...         model(torch.randn(8, 3)).square().mean().backward()
        ...         optimizer.step()
        >>> model[0].weight.ne(0).all(1).tolist(), model[0].bias.ne(0).tolist()
        ([False, True, False, True], [False, True, False, True])
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
