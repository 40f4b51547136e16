"""Tests for oinfo_monitor.experiments.data: the modular-arithmetic task and the MNIST IDX reader."""

from __future__ import annotations

import gzip
import shutil
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from oinfo_monitor.experiments.data import mnist, modular_arithmetic

MNIST_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_RAW = MNIST_ROOT / "MNIST" / "raw"
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

needs_mnist = pytest.mark.skipif(
    not all((MNIST_RAW / f"{name}.gz").is_file() for name in (*TRAIN_FILES, *TEST_FILES)),
    reason=f"real MNIST not found under {MNIST_RAW} (expected the shared data checkout)",
)


# --- modular arithmetic -------------------------------------------------------------------------


def reference_label(a: int, b: int, op: str, p: int) -> int:
    """(a op b) mod p by plain Python; division searches for c with c * b = a (mod p)."""
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op in ("*", "x"):
        return (a * b) % p
    return next(c for c in range(p) if (c * b) % p == a)


def as_set(pairs: torch.Tensor) -> set[tuple[int, int]]:
    """The (a, b) rows of a pairs tensor as a set of tuples."""
    return {(int(a), int(b)) for a, b in pairs.tolist()}


def test_paper_defaults_give_3763_training_pairs() -> None:
    data = modular_arithmetic()
    assert (data.p, data.op, data.train_fraction, data.seed) == (97, "+", 0.4, 0)
    assert data.x_train.shape == (3763, 194)
    assert data.x_test.shape == (9409 - 3763, 194)
    assert data.y_train.shape == (3763,)
    assert data.pairs_test.shape == (9409 - 3763, 2)


@pytest.mark.parametrize(
    ("op", "n_pairs"), [("+", 121), ("-", 121), ("*", 121), ("x", 121), ("/", 110)]
)
def test_split_sizes_dtypes_and_coverage(op: str, n_pairs: int) -> None:
    p = 11
    data = modular_arithmetic(p=p, op=op, train_fraction=0.3, seed=1)
    n_train = int(0.3 * n_pairs)
    assert len(data.y_train) == len(data.x_train) == len(data.pairs_train) == n_train
    assert len(data.y_test) == len(data.x_test) == len(data.pairs_test) == n_pairs - n_train
    assert data.x_train.dtype == torch.float32
    assert data.y_train.dtype == data.pairs_train.dtype == torch.int64
    train, test = as_set(data.pairs_train), as_set(data.pairs_test)
    assert len(train) == n_train and len(test) == n_pairs - n_train
    assert not train & test
    every_pair = {(a, b) for a in range(p) for b in range(p) if op != "/" or b != 0}
    assert train | test == every_pair


@pytest.mark.parametrize("op", ["+", "-", "*", "x", "/"])
def test_labels_match_independent_computation(op: str) -> None:
    p = 13
    data = modular_arithmetic(p=p, op=op)
    for pairs, labels in ((data.pairs_train, data.y_train), (data.pairs_test, data.y_test)):
        expected = [reference_label(a, b, op, p) for a, b in pairs.tolist()]
        assert labels.tolist() == expected


def test_inputs_are_one_hot_of_a_then_b() -> None:
    p = 7
    data = modular_arithmetic(p=p, op="-")
    for x, pairs in ((data.x_train, data.pairs_train), (data.x_test, data.pairs_test)):
        expected = torch.zeros(len(pairs), 2 * p)
        for row, (a, b) in enumerate(pairs.tolist()):
            expected[row, a] = 1.0
            expected[row, p + b] = 1.0
        assert torch.equal(x, expected)


def test_x_is_an_alias_for_multiplication() -> None:
    times, x = modular_arithmetic(p=7, op="*"), modular_arithmetic(p=7, op="x")
    assert x.op == "*"
    assert torch.equal(times.pairs_train, x.pairs_train)
    assert torch.equal(times.y_train, x.y_train)


def test_split_is_deterministic_per_seed() -> None:
    first, again = modular_arithmetic(p=17, seed=3), modular_arithmetic(p=17, seed=3)
    other = modular_arithmetic(p=17, seed=4)
    assert torch.equal(first.pairs_train, again.pairs_train)
    assert torch.equal(first.x_test, again.x_test)
    assert as_set(first.pairs_train) != as_set(other.pairs_train)


def test_global_torch_rng_is_untouched() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    modular_arithmetic(p=11, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_device_is_honoured() -> None:
    data = modular_arithmetic(p=5, device="meta")
    tensors = (data.x_train, data.y_train, data.x_test, data.y_test, data.pairs_train)
    assert all(t.device.type == "meta" for t in (*tensors, data.pairs_test))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1}, "p must be an integer >= 2"),
        ({"p": 7.0}, "p must be an integer >= 2"),
        ({"p": True}, "p must be an integer >= 2"),
        ({"op": "%"}, r"unknown op '%'; valid ops are '\+', '-', '\*', 'x', '/'"),
        ({"train_fraction": 0.0}, "strictly between 0 and 1"),
        ({"train_fraction": 1.0}, "strictly between 0 and 1"),
        ({"train_fraction": -0.2}, "strictly between 0 and 1"),
        ({"p": 12, "op": "/"}, "needs a prime p"),
        ({"p": 2, "train_fraction": 0.1}, "empty split"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        modular_arithmetic(**kwargs)  # type: ignore[arg-type]


def test_small_mlp_memorises_training_split() -> None:
    p = 23
    data = modular_arithmetic(p=p, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: extra threads only add contention on a busy CI box
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = torch.nn.Sequential(
                torch.nn.Linear(2 * p, 64), torch.nn.ReLU(), torch.nn.Linear(64, p)
            )
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        for _ in range(200):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
            optimiser.step()
        with torch.no_grad():
            accuracy = (model(data.x_train).argmax(dim=1) == data.y_train).float().mean()
    finally:
        torch.set_num_threads(threads)
    assert accuracy >= 0.99


# --- MNIST: synthetic IDX files (always run) ----------------------------------------------------


def write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed when the name ends in .gz)."""
    payload = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(">u1").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_split(root: Path, images: np.ndarray, labels: np.ndarray, suffix: str = "") -> Path:
    """Write a fake MNIST test split under root/MNIST/raw and return that folder."""
    raw = root / "MNIST" / "raw"
    write_idx(raw / f"{TEST_FILES[0]}{suffix}", 2051, images)
    write_idx(raw / f"{TEST_FILES[1]}{suffix}", 2049, labels)
    return raw


@pytest.fixture
def fake_split() -> tuple[np.ndarray, np.ndarray]:
    """Five random 28x28 uint8 images with labels."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([3, 0, 9, 3, 7], np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_reader_decodes_synthetic_files(
    tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray], suffix: str
) -> None:
    images, labels = fake_split
    write_split(tmp_path, images, labels, suffix)
    x, y = mnist(tmp_path, train=False)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (5, 784)
    assert y.tolist() == [3, 0, 9, 3, 7]
    assert x[2, 28 * 4 + 5].item() == pytest.approx(images[2, 4, 5] / 255.0)
    assert torch.allclose(x, torch.tensor(images.reshape(5, -1) / 255.0, dtype=torch.float32))


def test_raw_file_preferred_over_gz(
    tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = fake_split
    write_split(tmp_path, images, labels)
    write_split(tmp_path, 255 - images, labels, ".gz")
    x, _ = mnist(tmp_path, train=False)
    assert torch.allclose(x, torch.tensor(images.reshape(5, -1) / 255.0, dtype=torch.float32))


def test_missing_folder_names_path_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        mnist(tmp_path / "nowhere")
    message = str(excinfo.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message
    assert "download=True" in message


def test_missing_label_file_is_named(
    tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    raw = write_split(tmp_path, *fake_split)
    (raw / TEST_FILES[1]).unlink()
    with pytest.raises(FileNotFoundError, match="MNIST file t10k-labels-idx1-ubyte"):
        mnist(tmp_path, train=False)


def test_corrupt_magic_number_raises(
    tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    raw = write_split(tmp_path, *fake_split)
    path = raw / TEST_FILES[1]
    data = bytearray(path.read_bytes())
    data[3] = 0x03
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has magic number 2051"):
        mnist(tmp_path, train=False)


def test_truncated_file_raises(tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]) -> None:
    raw = write_split(tmp_path, *fake_split)
    path = raw / TEST_FILES[0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte has \d+ bytes .* truncated"):
        mnist(tmp_path, train=False)


def test_truncated_header_raises(tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]) -> None:
    raw = write_split(tmp_path, *fake_split)
    path = raw / TEST_FILES[0]
    path.write_bytes(path.read_bytes()[:9])
    with pytest.raises(ValueError, match="header needs 16 bytes"):
        mnist(tmp_path, train=False)


def test_corrupt_gzip_raises(tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]) -> None:
    raw = write_split(tmp_path, *fake_split, suffix=".gz")
    path = raw / f"{TEST_FILES[0]}.gz"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz is not a readable gzip"):
        mnist(tmp_path, train=False)


def test_image_and_label_counts_must_agree(
    tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = fake_split
    write_split(tmp_path, images, labels[:4])
    with pytest.raises(ValueError, match=r"has 5 images but .* has 4 labels"):
        mnist(tmp_path, train=False)


def test_wrong_image_size_and_label_range_raise(
    tmp_path: Path, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = fake_split
    write_split(tmp_path, images[:, :14], labels)
    with pytest.raises(ValueError, match="expected 28x28"):
        mnist(tmp_path, train=False)
    write_split(tmp_path, images, labels + 1)
    with pytest.raises(ValueError, match="contains label 10"):
        mnist(tmp_path, train=False)


# --- MNIST: download path, with torchvision faked (never touches the network) ------------------


def test_download_without_torchvision_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(FileNotFoundError, match=r"needs torchvision.*ModuleNotFoundError"):
        mnist(tmp_path, download=True)


def test_download_with_broken_torchvision_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "torchvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms missing')\n"
    )
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(FileNotFoundError, match="RuntimeError: operator torchvision::nms missing"):
        mnist(tmp_path / "data", download=True)


def test_download_fetches_through_torchvision_then_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    calls: list[tuple[str, bool, bool]] = []

    def fake_mnist_class(root: str, train: bool, download: bool) -> None:
        calls.append((root, train, download))
        write_split(Path(root), *fake_split)

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=fake_mnist_class)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    x, y = mnist(tmp_path, train=False, download=True)
    assert calls == [(str(tmp_path), False, True)]
    assert x.shape == (5, 784) and y.tolist() == [3, 0, 9, 3, 7]


def test_download_skipped_when_files_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_split: tuple[np.ndarray, np.ndarray]
) -> None:
    write_split(tmp_path, *fake_split)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    _, y = mnist(tmp_path, train=False, download=True)
    assert len(y) == 5


# --- MNIST: the real files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test_split() -> tuple[torch.Tensor, torch.Tensor]:
    """The real MNIST test split, read once."""
    return mnist(MNIST_ROOT, train=False)


@needs_mnist
def test_real_test_split(mnist_test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = mnist_test_split
    assert x.shape == (10000, 784) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert torch.bincount(y, minlength=10).tolist() == TEST_LABEL_COUNTS
    assert y[:5].tolist() == [7, 2, 1, 0, 4]


@needs_mnist
def test_real_train_split() -> None:
    x, y = mnist(MNIST_ROOT, train=True)
    assert x.shape == (60000, 784) and y.shape == (60000,)
    assert torch.bincount(y, minlength=10).tolist() == TRAIN_LABEL_COUNTS
    assert x.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert x.std().item() == pytest.approx(0.3081, abs=1e-4)


@needs_mnist
def test_gz_only_layout_matches_raw(
    tmp_path: Path, mnist_test_split: tuple[torch.Tensor, torch.Tensor]
) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in TEST_FILES:
        shutil.copy(MNIST_RAW / f"{name}.gz", raw)
    x, y = mnist(tmp_path, train=False)
    assert torch.equal(x, mnist_test_split[0])
    assert torch.equal(y, mnist_test_split[1])
