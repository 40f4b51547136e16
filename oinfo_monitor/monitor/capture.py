"""Capture layer activations of a model on a fixed probe set without disturbing its training.

This is the capture layer of oinfo-monitor: it turns a model plus a probe set into activation
matrices ``{layer_name: Tensor[samples, neurons]}``. Everything here is written so that running a
probe between two training steps leaves the training run exactly as it was: training flags, grad
mode, random number generator state and the model's own hooks are all restored afterwards.

Reductions to ``[samples, neurons]`` (one variable per neuron or channel):

* convolution outputs ``[B, C, *spatial]`` are averaged over the spatial dims → ``[B, C]``;
* other 2-D outputs ``[B, D]`` are kept as they are;
* other 3-D outputs ``[B, T, D]`` (sequence models, features last) keep one token,
  ``token`` (an index along the time dim, default the last token) or the mean over tokens
  (``token="mean"``);
* other outputs with 4 or more dims are rejected;
* tuple/list outputs (``nn.LSTM``, ``nn.MultiheadAttention``, ...) use their first element.

The samples of a layer's output lie along its *sample axis*: given per layer by the caller, else
read from the module where it says (``batch_first=False`` in ``nn.LSTM``/``nn.GRU``/``nn.RNN``,
``nn.MultiheadAttention`` and the ``nn.Transformer*`` layers means axis 1), else axis 0. A layer
whose output does not hold the probe's samples along that axis is rejected with a message naming
the option that fixes it, never measured over the wrong axis.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

from oinfo_monitor.monitor.context import probe_context
from oinfo_monitor.monitor.layers import (
    CONV_TYPES,
    LayerSelector,
    module_sample_axis,
    resolve_layers,
    unwrap_model,
)
from oinfo_monitor.monitor.probe import check_inputs, materialize_probe

__all__ = [
    "ACTIVATION_TYPES",
    "CaptureSpec",
    "LayerSelector",
    "capture_activations",
    "materialize_probe",
    "probe_context",
    "resolve_layers",
    "unwrap_model",
]

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.RReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardshrink,
    nn.Softshrink,
    nn.LogSigmoid,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Threshold,
)
"""Elementwise activation modules whose output ``capture="post"`` records after a layer."""


@dataclass(frozen=True)
class CaptureSpec:
    """What to record for each probed layer, validated once so bad options fail early.

    Attributes:
        capture: ``"pre"`` records the layer's own output (pre-activation); ``"post"`` records
            the output of the activation module that runs right after the layer.
        activation: with ``capture="post"``, a function applied to the layer's output instead of
            looking for an activation module (for models that call e.g. ``F.relu`` in forward).
        token: for ``[B, T, D]`` outputs, the token index along dim 1 or ``"mean"``.
    """

    capture: Literal["pre", "post"] = "pre"
    activation: Callable[[Tensor], Tensor] | None = None
    token: int | Literal["mean"] = -1

    def __post_init__(self) -> None:
        """Reject invalid option combinations with a clear message."""
        if self.capture not in ("pre", "post"):
            raise ValueError(f"capture must be 'pre' or 'post', got {self.capture!r}")
        if self.activation is not None and not callable(self.activation):
            raise TypeError(f"activation must be callable, got {self.activation!r}")
        if self.activation is not None and self.capture == "pre":
            raise ValueError("activation is only used with capture='post'")
        if self.token != "mean" and (
            not isinstance(self.token, int) or isinstance(self.token, bool)
        ):
            raise ValueError(f"token must be an int or 'mean', got {self.token!r}")

    @property
    def follows_next_module(self) -> bool:
        """Whether the post-activation is found by watching which module runs next."""
        return self.capture == "post" and self.activation is None


def _first_tensor(output: Any) -> Tensor:
    """Return a module output, or the first element of a tuple/list output."""
    if isinstance(output, tuple | list) and output:
        output = output[0]
    if not isinstance(output, Tensor):
        raise TypeError(f"expected a tensor output, got {type(output).__name__}")
    return output


def _reduce(
    output: Tensor,
    name: str,
    is_conv: bool,
    token: int | Literal["mean"],
    batch: int,
    axis: int | None,
    module: nn.Module,
) -> Tensor:
    """Reduce one layer output to an owned ``[batch, neurons]`` tensor (see module docstring)."""
    known = module_sample_axis(module)
    chosen = axis if axis is not None else (known if known is not None else 0)
    if output.ndim <= chosen or output.shape[chosen] != batch:
        raise ValueError(_sample_axis_message(output, name, batch, chosen, axis, known))
    output = output.movedim(chosen, 0)
    if is_conv and output.ndim >= 3:
        reduced = output.flatten(2).mean(dim=2)
    elif output.ndim == 2:
        reduced = output
    elif output.ndim == 3 and not is_conv:
        reduced = output.mean(dim=1) if token == "mean" else output[:, token]
    else:
        raise ValueError(
            f"layer {name!r} output has shape {tuple(output.shape)}; supported: "
            "[B, D], [B, T, D] (sequence) or [B, C, *spatial] from a Conv layer"
        )
    # Own the memory: a later in-place op (e.g. ReLU(inplace=True)) must not change the capture.
    return reduced.detach().clone(memory_format=torch.contiguous_format)


def _sample_axis_message(
    output: Tensor, name: str, batch: int, chosen: int, given: int | None, known: int | None
) -> str:
    """Explain an output whose sample axis does not hold the probe's samples, and what to pass."""
    source = (
        "the sample_axis option"
        if given is not None
        else f"the module's batch_first={known == 0}"
        if known is not None
        else "the default"
    )
    return (
        f"layer {name!r} output has shape {tuple(output.shape)}: {source} puts its samples along "
        f"dim {chosen}, which does not hold the probe's {batch} samples; pass "
        "sample_axis={" + repr(name) + ": <dim>} for this layer's output, or probe_axis=<dim> "
        "when the probe itself is not sample-first (e.g. a time-first [T, B, D] sequence)"
    )


class _Recorder:
    """Forward hooks that collect the reduced outputs of the probed layers, chunk by chunk."""

    def __init__(
        self,
        layers: dict[str, nn.Module],
        spec: CaptureSpec,
        sample_axes: Mapping[str, int | None],
    ) -> None:
        """Prepare empty per-layer results for ``layers`` captured according to ``spec``."""
        self.layers = layers
        self.spec = spec
        self.sample_axes = sample_axes
        self.results: dict[str, list[Tensor]] = {name: [] for name in layers}
        self.chunk: dict[str, list[Tensor]] = {}
        self.pending: list[str] = []
        self.batch = 0

    @contextlib.contextmanager
    def attached(self, model: nn.Module) -> Iterator[None]:
        """Keep the hooks registered for the duration of the block and remove them all after.

        Hooks go on every leaf module when the next module is watched, then on each probed
        layer (leaf hooks first, so a leaf that is also a layer resolves earlier layers before
        becoming pending itself).
        """
        with contextlib.ExitStack() as stack:
            if self.spec.follows_next_module:
                for name, module in model.named_modules():
                    if next(module.children(), None) is None:
                        hook = partial(self._on_leaf, name)
                        stack.enter_context(module.register_forward_hook(hook))
            for name, layer in self.layers.items():
                stack.enter_context(layer.register_forward_hook(partial(self._on_layer, name)))
            yield

    def start_chunk(self, batch: int) -> None:
        """Reset the per-forward state before probing ``batch`` samples."""
        self.batch = batch
        self.chunk = {name: [] for name in self.layers}
        self.pending = []

    def finish_chunk(self) -> None:
        """Check that every layer was recorded exactly once in this forward and keep it."""
        if self.pending:
            raise ValueError(
                f"layer {self.pending[0]!r} is not followed by any module in the forward pass, so it has "
                "no activation module to capture; use capture='pre' or pass activation=..."
            )
        for name, parts in self.chunk.items():
            if len(parts) != 1:
                raise ValueError(_call_count_message(name, len(parts)))
            self.results[name].append(parts[0])

    def _store(self, name: str, output: Any) -> None:
        """Reduce and keep one recorded output of layer ``name``."""
        tensor = _first_tensor(output)
        if self.spec.activation is not None:
            tensor = self.spec.activation(tensor)
        module = self.layers[name]
        is_conv = isinstance(module, CONV_TYPES)
        axis = self.sample_axes.get(name)
        reduced = _reduce(tensor, name, is_conv, self.spec.token, self.batch, axis, module)
        self.chunk[name].append(reduced)

    def _on_layer(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        """Forward hook of a probed layer: record it now, or wait for the next module."""
        if self.spec.follows_next_module:
            self.pending.append(name)
        else:
            self._store(name, output)

    def _on_leaf(self, leaf: str, module: nn.Module, args: Any, output: Any) -> None:
        """Forward hook of a leaf module: it is the next module of every pending layer."""
        pending, self.pending = self.pending, []
        for name in pending:
            if not isinstance(module, ACTIVATION_TYPES):
                raise ValueError(
                    f"layer {name!r} is not followed by an activation module (next module: "
                    f"{leaf!r}, {type(module).__name__}); use capture='pre' or pass "
                    "activation=torch.relu (or the function the model applies)"
                )
            self._store(name, output)


def _call_count_message(name: str, calls: int) -> str:
    """Explain why a layer that ran zero or several times per forward cannot be captured."""
    if calls == 0:
        return (
            f"layer {name!r} did not run during the probe forward pass (its forward is never "
            "called, e.g. it is used functionally through its weights); choose another layer"
        )
    return (
        f"layer {name!r} ran {calls} times in one forward pass; capture needs exactly one call "
        "per forward (a reused module is ambiguous); choose another layer"
    )


def _model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer, or None if it has neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


def capture_activations(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    layers: dict[str, nn.Module],
    *,
    capture: Literal["pre", "post"] = "pre",
    activation: Callable[[Tensor], Tensor] | None = None,
    token: int | Literal["mean"] = -1,
    batch_size: int | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    probe_axis: int = 0,
    sample_axes: Mapping[str, int | None] | None = None,
) -> dict[str, Tensor]:
    """Run the probe through the model and return ``{layer_name: Tensor[samples, neurons]}``.

    ``inputs`` are the positional arguments of ``forward`` (equal sizes along ``probe_axis``, the
    axis that holds the samples); they are fed in chunks of ``batch_size`` samples (None: all at
    once), moved to the model's device, and run by ``forward(model, chunk)`` (default
    ``model(*chunk)``; the chunk is a tensor when there is one input, else a tuple). Outputs are
    reduced as described in the module docstring, with ``sample_axes[name]`` the sample axis of
    a layer's output (missing or None: from the module, else 0), and concatenated per layer; they
    are detached, on the model's device, in the dtype the layer produced. ``capture``,
    ``activation`` and ``token`` are as in :class:`CaptureSpec`. The model is unwrapped first and
    run inside :func:`probe_context`; every hook registered here is removed on exit, also when
    forward raises, and the model's own hooks are left untouched.

    Examples:
        >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
        >>> found = capture_activations(net, torch.randn(10, 4), {"0": net[0]}, capture="post")
        >>> tuple(found["0"].shape), bool((found["0"] >= 0).all())
        ((10, 6), True)

    Raises:
        ValueError: invalid inputs or options, a layer that does not run exactly once per
            forward, an output without the probe's samples along its sample axis or of an
            unsupported shape, or (``capture="post"`` without ``activation``) a layer not
            directly followed by an activation module.
    """
    spec = CaptureSpec(capture=capture, activation=activation, token=token)
    tensors = check_inputs(inputs, probe_axis)
    if not layers:
        raise ValueError("no layers to capture")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size}")
    model = unwrap_model(model)
    device = _model_device(model)
    total = tensors[0].shape[probe_axis]
    step = batch_size or total
    recorder = _Recorder(layers, spec, sample_axes or {})
    with probe_context(model), recorder.attached(model):
        for start in range(0, total, step):
            chunk = [t.narrow(probe_axis, start, min(step, total - start)) for t in tensors]
            chunk = [t.to(device) if device is not None else t for t in chunk]
            recorder.start_chunk(chunk[0].shape[probe_axis])
            if forward is None:
                model(*chunk)
            else:
                forward(model, chunk[0] if len(chunk) == 1 else tuple(chunk))
            recorder.finish_chunk()
    return {name: torch.cat(parts) for name, parts in recorder.results.items()}
