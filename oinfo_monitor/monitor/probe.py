"""Turn a probe (a tensor, forward arguments, or a DataLoader) into fixed inputs and a target.

Read once, so that every evaluation sees the same samples, with every RNG state restored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from oinfo_monitor.monitor.context import preserved_rng


def check_inputs(inputs: Tensor | Sequence[Tensor], axis: int = 0) -> tuple[Tensor, ...]:
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
    with preserved_rng():
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
    inputs = check_inputs(inputs, axis)
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


def keyword_probe(
    probe: Mapping[str, Any], forward: Callable[[Any, Any], Any] | None
) -> tuple[tuple[Tensor, ...], Callable[[Any, Any], Any]]:
    """A probe of keyword inputs (``{"input_ids": ..., "attention_mask": ...}``, as Hugging Face
    models take) as positional tensors, and a forward that hands them back by name:
    ``model(**batch)``, or ``forward(model, batch)`` with `batch` the dict of one chunk.

    Examples:
        >>> inputs, run = keyword_probe({"a": torch.ones(4, 2), "b": torch.zeros(4, 2)}, None)
        >>> run(lambda a, b: (a + b).sum(), inputs)
        tensor(8.)
    """
    if not probe or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in probe.items()):
        raise ValueError("a dict probe must map input names to tensors (one entry per sample)")
    keys = tuple(probe)

    def run(model: Any, batch: Any) -> Any:
        parts = batch if isinstance(batch, tuple) else (batch,)
        named = dict(zip(keys, parts, strict=True))
        return model(**named) if forward is None else forward(model, named)

    return tuple(probe.values()), run
