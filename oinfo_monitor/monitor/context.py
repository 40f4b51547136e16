"""Run code on a model between training steps without leaving a trace on the training run.

`probe_context` puts every submodule in eval mode, turns autograd and autocast off, and restores
each module's own ``training`` flag, the grad mode and the CPU/CUDA/Python RNG states on exit.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import torch
from torch import nn


def _cuda_devices() -> list[int]:
    """CUDA devices whose RNG must be preserved: all of them once CUDA is initialized."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the CPU torch, CUDA and Python ``random`` RNG states on exit.

    Examples:
        >>> state = torch.random.get_rng_state()
        >>> with preserved_rng():
        ...     _ = torch.rand(3)
        >>> torch.equal(torch.random.get_rng_state(), state)
        True
    """
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
        with preserved_rng(), torch.no_grad(), _autocast_off():
            for module, _ in flags:
                module.training = False
            yield
    finally:
        for module, training in flags:
            module.training = training
