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
import difflib
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

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

LayerSelector = str | type[nn.Module] | Sequence[str | type[nn.Module]]
"""Which layers to probe: module name(s) as in ``named_modules()``, module type(s), or a mix."""

_DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TYPES: tuple[type[nn.Module], ...] = (
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
        if isinstance(module, _DEFAULT_TYPES) and id(module) not in bypassed
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
    layers = [n for n, m in named if isinstance(m, _DEFAULT_TYPES)]
    listed = ", ".join(repr(n) for n in layers[:_MAX_LISTED]) or "none"
    if len(layers) > _MAX_LISTED:
        listed += f", ... ({len(layers) - _MAX_LISTED} more)"
    return f"unknown layer name {name!r}.{suggestion} Available Linear/Conv layers: {listed}."


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


def _cuda_devices() -> list[int]:
    """CUDA devices whose RNG must be preserved: all of them once CUDA is initialized."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


@contextlib.contextmanager
def _preserved_rng() -> Iterator[None]:
    """Restore the CPU torch, CUDA and Python ``random`` RNG states on exit."""
    python_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=_cuda_devices(), device_type="cuda"):
            yield
    finally:
        random.setstate(python_state)


@contextlib.contextmanager
def _autocast_off() -> Iterator[None]:
    """Disable any surrounding autocast, so activations are measured in the model's own precision."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


@contextlib.contextmanager
def probe_context(model: nn.Module) -> Iterator[None]:
    """Run a probe without disturbing training: eval mode, no grad, RNG and flags restored.

    Inside the block every submodule is in eval mode (so Dropout consumes no randomness and
    BatchNorm statistics stay untouched), autograd and any surrounding autocast are off. On exit, also after an exception,
    each submodule's own ``training`` flag, the grad mode and the CPU/CUDA/Python RNG states are
    restored exactly. The flags are set directly rather than through ``train()``/``eval()``, so
    overrides of those methods with side effects are not triggered.
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        with _preserved_rng(), torch.no_grad(), _autocast_off():
            for module, _ in flags:
                module.training = False
            yield
    finally:
        for module, training in flags:
            module.training = training


def _first_tensor(output: Any) -> Tensor:
    """Return a module output, or the first element of a tuple/list output."""
    if isinstance(output, tuple | list) and output:
        output = output[0]
    if not isinstance(output, Tensor):
        raise TypeError(f"expected a tensor output, got {type(output).__name__}")
    return output


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
        is_conv = isinstance(module, _CONV_TYPES)
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


def _check_inputs(inputs: Tensor | Sequence[Tensor], axis: int = 0) -> tuple[Tensor, ...]:
    """Validate probe inputs: a non-empty tuple of tensors with equal sizes along the sample axis."""
    tensors = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if not tensors or not all(isinstance(t, Tensor) and t.ndim > axis for t in tensors):
        raise ValueError(
            f"inputs must be a non-empty tuple of tensors with a sample dim (dim {axis})"
        )
    sizes = {t.shape[axis] for t in tensors}
    if len(sizes) != 1:
        raise ValueError(f"inputs have different sample counts along dim {axis}: {sorted(sizes)}")
    if 0 in sizes:
        raise ValueError("inputs hold no samples")
    return tensors


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
    tensors = _check_inputs(inputs, probe_axis)
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


def _split_batch(batch: Any, axis: int) -> tuple[tuple[Tensor, ...], Tensor | None]:
    """Split one batch into forward inputs and an optional target (see materialize_probe)."""
    if isinstance(batch, dict):
        raise ValueError(
            "dict batches are not supported; pass the probe as tensors "
            "(a tensor or a tuple of forward arguments)"
        )
    if isinstance(batch, Tensor):
        batch = (batch,)
    if not (_is_tensor_args(batch) and len(batch) > 0 and all(t.ndim > axis for t in batch)):
        raise ValueError(
            f"a probe batch must be a tensor or a tuple of batched tensors, got {type(batch)}"
        )
    if len(batch) == 2 and _is_target(batch[0], batch[1], axis):
        return (batch[0],), batch[1]
    return tuple(batch), None


def _is_target(inputs: Tensor, candidate: Tensor, axis: int) -> bool:
    """Whether ``candidate`` looks like per-sample targets: 1-D, integer or float, one per sample."""
    return (
        candidate.ndim == 1
        and candidate.shape[0] == inputs.shape[axis]
        and candidate.dtype != torch.bool
        and not candidate.is_complex()
    )


def _collect_batches(
    batches: Iterable[Any], max_samples: int | None, axis: int
) -> tuple[list[tuple[Tensor, ...]], list[Tensor | None]]:
    """Read batches until ``max_samples`` samples are in, preserving every RNG state."""
    inputs: list[tuple[Tensor, ...]] = []
    targets: list[Tensor | None] = []
    count = 0
    with _preserved_rng():
        for batch in batches:
            batch_inputs, batch_target = _split_batch(batch, axis)
            inputs.append(batch_inputs)
            targets.append(batch_target)
            count += batch_inputs[0].shape[axis]
            if max_samples is not None and count >= max_samples:
                break
    return inputs, targets


def _concat(parts: list[tuple[Tensor, ...]], axis: int) -> tuple[Tensor, ...]:
    """Concatenate per-batch input tuples along the sample axis, requiring the same structure."""
    if len({len(p) for p in parts}) != 1:
        raise ValueError("probe batches have different numbers of tensors")
    return tuple(torch.cat(column, dim=axis) for column in zip(*parts, strict=True))


def materialize_probe(
    probe: Tensor | Sequence[Tensor] | Iterable[Any],
    target: Tensor | None = None,
    max_samples: int | None = None,
    axis: int = 0,
) -> tuple[tuple[Tensor, ...], Tensor | None]:
    """Turn a probe into fixed forward inputs plus an optional target, so every measurement sees
    the same samples.

    * A tensor is the single forward argument; a tuple/list of tensors holds the positional
      forward arguments (never split into inputs and target).
    * Anything else (a ``DataLoader`` or any iterable of batches) is read batch by batch and
      concatenated along the sample axis ``axis`` (dim 0 unless the model takes e.g. time-first
      sequences). A batch is a tensor or a tuple/list of tensors; a batch of two
      tensors whose second is 1-D (integer or float, not bool) with one entry per sample is an
      ``(inputs, target)`` pair, any other batch holds forward arguments only. Dict batches are
      rejected. Reading stops once ``max_samples`` samples are in; the CPU/CUDA/Python RNG
      states are restored afterwards, since shuffling and worker seeding consume them.
    * An explicit ``target`` replaces a target found in the batches.
    * ``max_samples`` keeps the first samples of the inputs and of the target.

    Returns detached tensors (on the device they came on).

    Examples:
        >>> inputs, target = materialize_probe([(torch.randn(4, 3), torch.arange(4))] * 2)
        >>> tuple(inputs[0].shape), target.tolist()
        ((8, 3), [0, 1, 2, 3, 0, 1, 2, 3])

    Raises:
        ValueError: empty probe, inputs with different first dims, a target whose length differs
            from the inputs, batches of different structure, or an invalid ``max_samples``.
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be a positive int or None, got {max_samples}")
    if _is_tensor_args(probe):
        inputs = (probe,) if isinstance(probe, Tensor) else tuple(probe)
        found = None
    else:
        parts, targets = _collect_batches(probe, max_samples, axis)
        if not parts:
            raise ValueError("the probe is empty (it yielded no batches)")
        inputs = _concat(parts, axis)
        found = _concat_targets(targets)
    return _finalize(inputs, target if target is not None else found, max_samples, axis)


def _is_tensor_args(probe: object) -> bool:
    """Whether the probe is given directly as a tensor or a tuple/list of tensors."""
    if isinstance(probe, Tensor):
        return True
    return isinstance(probe, tuple | list) and all(isinstance(t, Tensor) for t in probe)


def _concat_targets(targets: list[Tensor | None]) -> Tensor | None:
    """Concatenate per-batch targets, or None when no batch carried one."""
    present = [t for t in targets if t is not None]
    if not present:
        return None
    if len(present) != len(targets):
        raise ValueError("some probe batches carry a target and others do not")
    return torch.cat(present)


def _finalize(
    inputs: tuple[Tensor, ...], target: Tensor | None, max_samples: int | None, axis: int
) -> tuple[tuple[Tensor, ...], Tensor | None]:
    """Validate, truncate to ``max_samples`` and detach the probe inputs and target."""
    inputs = _check_inputs(inputs, axis)
    total = inputs[0].shape[axis]
    keep = total if max_samples is None else min(total, max_samples)
    inputs = tuple(t.narrow(axis, 0, keep).detach() for t in inputs)
    if target is None:
        return inputs, None
    if not isinstance(target, Tensor) or target.ndim == 0:
        raise ValueError("target must be a tensor with one entry per sample")
    target = target[:max_samples].detach()
    if target.shape[0] != keep:
        raise ValueError(
            f"target has {target.shape[0]} entries but the inputs have {keep} "
            "samples (after max_samples truncation)"
        )
    return inputs, target
