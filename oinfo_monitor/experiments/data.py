"""Datasets of the experiments: modular arithmetic (grokking) and MNIST read from IDX files."""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

_OPS = ("+", "-", "*", "x", "/")

_MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_SIDE = 28


@dataclass(frozen=True, eq=False)
class ModularArithmetic:
    """Seeded train/test split of all (a, b) -> (a op b) mod p examples, as full-batch tensors.

    ``x_*`` are float32 ``[n, 2p]`` (one-hot a followed by one-hot b), ``y_*`` int64 ``[n]``
    labels and ``pairs_*`` int64 ``[n, 2]`` the raw (a, b) values; ``op`` is the canonical
    operation (``"x"`` is stored as ``"*"``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    pairs_train: torch.Tensor
    pairs_test: torch.Tensor
    p: int
    op: str
    train_fraction: float
    seed: int


def _is_prime(n: int) -> bool:
    """Whether `n` is a prime number (trial division; p is small)."""
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def modular_arithmetic(
    p: int = 97,
    op: str = "+",
    train_fraction: float = 0.4,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> ModularArithmetic:
    """Build the grokking task (a op b) mod p with a seeded random train/test split of all pairs.

    All p*p pairs are used (for ``"/"`` only those with b != 0, and p must be prime); the
    training split has ``int(train_fraction * n_pairs)`` examples (floor, which gives the
    3,763 of 9,409 pairs of Clauw et al. 2024 for the defaults). The split uses its own
    ``torch.Generator`` so the global torch RNG is left untouched.
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 2:
        raise ValueError(f"p must be an integer >= 2, got {p!r}")
    if op not in _OPS:
        raise ValueError(f"unknown op {op!r}; valid ops are {', '.join(map(repr, _OPS))}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(
            f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}"
        )
    if op == "/" and not _is_prime(p):
        raise ValueError(f"op '/' needs a prime p (so every b != 0 has an inverse mod p), got {p}")
    op = "*" if op == "x" else op

    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    if op == "/":
        keep = b != 0
        a, b = a[keep], b[keep]
    if op == "+":
        y = a + b
    elif op == "-":
        y = a - b
    elif op == "*":
        y = a * b
    else:
        inverse = torch.tensor([0] + [pow(v, -1, p) for v in range(1, p)])
        y = a * inverse[b]
    y = y.remainder(p)
    pairs = torch.stack([a, b], dim=1)
    x = torch.nn.functional.one_hot(pairs, p).reshape(len(pairs), 2 * p).float()

    n_pairs = len(pairs)
    n_train = int(train_fraction * n_pairs)
    if not 0 < n_train < n_pairs:
        raise ValueError(
            f"train_fraction={train_fraction} of {n_pairs} pairs leaves an empty split "
            f"({n_train} train); use a larger p or a fraction nearer 0.5"
        )
    order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed))
    train, test = order[:n_train], order[n_train:]
    return ModularArithmetic(
        x_train=x[train].to(device),
        y_train=y[train].to(device),
        x_test=x[test].to(device),
        y_test=y[test].to(device),
        pairs_train=pairs[train].to(device),
        pairs_test=pairs[test].to(device),
        p=p,
        op=op,
        train_fraction=train_fraction,
        seed=seed,
    )


def _how_to_get(raw_dir: Path) -> str:
    """The ways to get the MNIST files into `raw_dir`, for an error message."""
    names = ", ".join(name for pair in _MNIST_FILES.values() for name in pair)
    return (
        "Get them with download=True (needs the optional torchvision extra: "
        f"pip install 'oinfo-monitor[vision]'), or place the four MNIST files ({names}, "
        f"each raw or .gz) in {raw_dir}"
    )


def _locate(raw_dir: Path, name: str) -> Path | None:
    """The raw or else the gzipped MNIST file `name` in `raw_dir`, or None."""
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one big-endian IDX file of unsigned bytes, checking its magic number and size."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable gzip file ({exc}); it may be corrupt") from exc
    if len(data) < 4:
        raise ValueError(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path} has magic number {found}, expected {magic}; the file is corrupt")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes, has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise ValueError(
            f"{path} has {len(data)} bytes but its header {dims} implies {expected}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _download(root: Path, train: bool, raw_dir: Path) -> None:
    """Fetch MNIST through torchvision, imported only here because it is an optional extra."""
    try:
        import torchvision
    except (ImportError, RuntimeError) as exc:
        raise FileNotFoundError(
            f"MNIST files are missing from {raw_dir} and download=True needs torchvision, which "
            f"failed to import ({type(exc).__name__}: {exc}). Install a torchvision matching "
            f"your torch (pip install 'oinfo-monitor[vision]'), or place the four MNIST files "
            f"(raw or .gz) in {raw_dir}"
        ) from exc
    try:
        torchvision.datasets.MNIST(str(root), train=train, download=True)
    except (RuntimeError, OSError) as exc:
        raise FileNotFoundError(
            f"torchvision could not download MNIST into {raw_dir} ({exc}). {_how_to_get(raw_dir)}"
        ) from exc


def mnist(
    root: str | os.PathLike[str], train: bool = True, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an MNIST split from ``root/MNIST/raw``: float32 [N, 784] images in [0, 1], int64 labels.

    Reads the torchvision layout of IDX files (raw preferred over ``.gz``) with a small parser
    of our own, so torchvision is not needed to read; with ``download=True`` and files missing,
    torchvision is imported lazily to fetch them first.
    """
    root = Path(root)
    raw_dir = root / "MNIST" / "raw"
    names = _MNIST_FILES[train]
    if download and any(_locate(raw_dir, name) is None for name in names):
        _download(root, train, raw_dir)
    paths = []
    for name in names:
        path = _locate(raw_dir, name)
        if path is None:
            raise FileNotFoundError(
                f"MNIST file {name} (raw or .gz) not found in {raw_dir}. {_how_to_get(raw_dir)}"
            )
        paths.append(path)

    images = _read_idx(paths[0], _IMAGES_MAGIC)
    labels = _read_idx(paths[1], _LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE):
        raise ValueError(f"{paths[0]} holds images of shape {images.shape[1:]}, expected 28x28")
    if labels.ndim != 1:
        raise ValueError(f"{paths[1]} holds labels of shape {labels.shape}, expected one dimension")
    if len(images) != len(labels):
        raise ValueError(
            f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]} contains label {labels.max()}, expected digits 0-9")
    x = torch.from_numpy(images.reshape(len(images), _SIDE * _SIDE).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))
