"""Which modules of a model the monitor reads, and what their outputs look like.

`unwrap_model` strips training wrappers; `resolve_layers` turns a selector into named modules;
`module_sample_axis` and `rank_bound` say what a module's output holds (where its samples lie, and
how many dimensions its pre-activations can span).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence

from torch import nn

LayerSelector = str | type[nn.Module] | Sequence[str | type[nn.Module]]
"""Which layers to probe: module name(s) as in ``named_modules()``, module type(s), or a mix."""

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_MAX_LISTED = 20


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DataParallel/DistributedDataParallel and ``torch.compile`` wrappers, repeatedly.

    Probing the plain module matters: a compiled model ignores hooks added after its first
    compiled call, and running a probe through a DDP wrapper on one rank deadlocks the others.
    """
    while True:
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(inner := getattr(model, "_orig_mod", None), nn.Module):
            model = inner
        else:
            return model


def resolve_layers(model: nn.Module, layers: LayerSelector | None = None) -> dict[str, nn.Module]:
    """Turn a layer selector into ``{name: module}`` in registration order, names relative to the
    unwrapped model.

    ``layers=None`` selects every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` except the last one in
    ``named_modules()`` order, which is taken to be the output layer (the ``out_proj`` of
    ``nn.MultiheadAttention`` is skipped: its forward is never called). A string or a list of
    strings names modules as in ``named_modules()``; a module type or a tuple of types selects
    every submodule of those types (the root module itself is never matched by type); a list may
    mix names and types. Duplicates are removed.

    Raises:
        ValueError: a name is unknown (the message suggests close matches), a type matches no
            submodule, or the default selection is empty.
        TypeError: an entry is neither a string nor an ``nn.Module`` subclass.
    """
    named = list(unwrap_model(model).named_modules())
    if layers is None:
        return _default_layers(named)
    names, types = _split_selector(layers)
    known = {name for name, _ in named}
    for name in names:
        if name not in known:
            raise ValueError(_unknown_name_message(name, named))
    for kind in types:
        if not any(isinstance(module, kind) for name, module in named if name):
            raise ValueError(f"the model has no submodule of type {kind.__name__}")
    wanted = set(names)
    return {
        name: module
        for name, module in named
        if name in wanted or (name and isinstance(module, types))
    }


def _split_selector(layers: LayerSelector) -> tuple[list[str], tuple[type[nn.Module], ...]]:
    """Split a layer selector into module names and module types."""
    items = [layers] if isinstance(layers, str | type) else list(layers)
    names: list[str] = []
    types: list[type[nn.Module]] = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, type) and issubclass(item, nn.Module):
            types.append(item)
        else:
            raise TypeError(
                f"layers entries must be module names or nn.Module subclasses, got {item!r}"
            )
    return names, tuple(types)


def _default_layers(named: list[tuple[str, nn.Module]]) -> dict[str, nn.Module]:
    """Select every Linear/Conv layer except the last one (the presumed output layer)."""
    bypassed = {id(m.out_proj) for _, m in named if isinstance(m, nn.MultiheadAttention)}
    found = [
        (name, module)
        for name, module in named
        if isinstance(module, DEFAULT_TYPES) and id(module) not in bypassed
    ]
    if len(found) < 2:
        listed = ", ".join(repr(name) for name, _ in found) or "none"
        raise ValueError(
            f"no layers to monitor by default: the model has {len(found)} Linear/Conv layer(s) "
            f"({listed}) and the last one is excluded as the output layer; "
            "pass layers=... (module names or types) explicitly"
        )
    return dict(found[:-1])


def _unknown_name_message(name: str, named: list[tuple[str, nn.Module]]) -> str:
    """Explain an unknown layer name, with close matches and the available Linear/Conv names."""
    close = difflib.get_close_matches(name, [n for n, _ in named if n], n=3)
    suggestion = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    layers = [n for n, m in named if isinstance(m, DEFAULT_TYPES)]
    listed = ", ".join(repr(n) for n in layers[:_MAX_LISTED]) or "none"
    if len(layers) > _MAX_LISTED:
        listed += f", ... ({len(layers) - _MAX_LISTED} more)"
    return f"unknown layer name {name!r}.{suggestion} Available Linear/Conv layers: {listed}."


def module_sample_axis(module: nn.Module) -> int | None:
    """The axis of a module's output that holds the samples, where the module says (else None).

    Examples:
        >>> module_sample_axis(nn.LSTM(4, 8)), module_sample_axis(nn.GRU(4, 8, batch_first=True))
        (1, 0)
    """
    if isinstance(module, nn.TransformerEncoder | nn.TransformerDecoder):
        return module_sample_axis(module.layers[0]) if len(module.layers) else None
    if isinstance(module, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
        module = module.self_attn
    batch_first = getattr(module, "batch_first", None)
    if isinstance(batch_first, bool):
        return 0 if batch_first else 1
    return None


def rank_bound(module: nn.Module) -> int | None:
    """An upper bound on the rank of a linear layer's outputs over any probe: its input width.

    A `Linear` layer's output is an affine map of its ``in_features`` inputs, and the spatial mean
    of a convolution's output an affine map of ``in_channels`` × kernel-size shifted means (a
    transposed convolution's, of its ``in_channels`` means), so no
    multiplet larger than that has a full-rank covariance. None for other modules.

    Examples:
        >>> rank_bound(nn.Linear(8, 12)), rank_bound(nn.Conv2d(3, 16, 3)), rank_bound(nn.ReLU())
        (8, 27, None)
    """
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return int(module.in_channels) * math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        return int(module.in_channels)  # each input channel's mean, spread out
    return None
