"""Reading the user's files for ``oinfo-monitor``: activation arrays, targets, probes and whole models."""

from __future__ import annotations

import pickle
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from oinfo_monitor.cli.options import CommandError, one_line
from oinfo_monitor.estimators.validation import as_tensor

READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zlib.error,
)
"""Exceptions that mean "this file could not be read", turned into one-line errors where files load."""

MODEL_READ_ERRORS: tuple[type[Exception], ...] = (*READ_ERRORS, AttributeError, ImportError)
"""`READ_ERRORS`, and a model's class gone from its module or its module not importable."""


def check_file(path: Path, what: str) -> None:
    """Fail with a one-line message unless `path` is an existing file."""
    if not path.exists():
        raise CommandError(f"{what} {path} does not exist")
    if not path.is_file():
        raise CommandError(f"{what} {path} is not a file")


def _read_npy(path: Path) -> dict[str, Any]:
    """The array of a .npy file, named after the file."""
    return {path.stem: np.load(path, allow_pickle=False)}


def _read_npz(path: Path) -> dict[str, Any]:
    """Every array of a .npz file, by name (all read now, so a damaged member fails here)."""
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _read_pt(path: Path) -> dict[str, Any]:
    """A tensor (named after the file) or a dict of tensors, loaded without unpickling code."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict):
        return {str(name): value for name, value in loaded.items()}
    return {path.stem: loaded}


_READERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".pt": _read_pt,
    ".pth": _read_pt,
}


def load_arrays(path: Path, what: str = "input") -> dict[str, Tensor]:
    """The named arrays of a .npy (named after the file), .npz, or .pt/.pth file (a tensor or a dict of tensors)."""
    check_file(path, what)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise CommandError(
            f"{what} {path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            "pass a .npy, .npz, .pt or .pth file"
        )
    try:
        raw = reader(path)
    except READ_ERRORS as error:
        raise CommandError(f"cannot read {what} {path}: {one_line(str(error))}") from error
    return {name: _as_array(value, f"{path.name}: {name!r}") for name, value in raw.items()}


def _as_array(value: Any, label: str) -> Tensor:
    """A loaded entry as a tensor, refusing anything that is not an array of real numbers."""
    if not isinstance(value, Tensor | np.ndarray):
        raise CommandError(f"{label} is a {type(value).__name__}, not an array or tensor")
    return as_tensor(value, label)


def load_single(path: Path, what: str) -> Tensor:
    """The one array of a file that must hold exactly one (a target or a probe)."""
    arrays = load_arrays(path, what)
    if len(arrays) != 1:
        raise CommandError(f"{what} {path} holds {len(arrays)} arrays; it must hold exactly one")
    return next(iter(arrays.values()))


def load_model(path: Path) -> nn.Module:
    """Unpickle a whole model saved with ``torch.save(model)``: this runs code from the file, so trusted files only."""
    check_file(path, "checkpoint")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except MODEL_READ_ERRORS as error:
        missing_class = isinstance(error, AttributeError | ImportError)
        hint = " (the model's class must be importable here)" if missing_class else ""
        raise CommandError(
            f"cannot load a model from {path}: {one_line(str(error))}{hint}"
        ) from error
    if not isinstance(model, nn.Module):
        state_dict = isinstance(model, dict)
        hint = ": a state_dict? Save the whole model with torch.save(model)" if state_dict else ""
        raise CommandError(f"{path} holds a {type(model).__name__}, not an nn.Module{hint}")
    return model


def probe_inputs(path: Path, model: nn.Module) -> Tensor:
    """The probe tensor, floats cast to the dtype of the model's floating-point parameters."""
    probe = load_single(path, "probe")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return probe.to(dtype) if dtype is not None and probe.is_floating_point() else probe
