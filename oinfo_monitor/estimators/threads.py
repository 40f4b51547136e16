"""Thread pinning for the math layer: the copula transform, the covariances and the scoring run on
one intra-op thread on the CPU.

Their work is many sorts, gathers, reductions and small matrix products that gain little from a
second thread on an idle machine and lose many times that on a busy one (a training loop, data
loaders): every parallel operation waits until its helper thread gets a core
(benchmarks/bench_oinfo.py, benchmarks/bench_copnorm.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_cpu_thread(device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block on one intra-op thread when it computes on the CPU (`device`, None meaning the
    CPU), restoring the caller's setting after.

    Nested uses cost nothing: the inner one finds a single thread already.

    Examples:
        >>> before = torch.get_num_threads()
        >>> with one_cpu_thread(torch.device("cpu")):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    threads = torch.get_num_threads()
    if torch.device(device or "cpu").type == "cpu" and threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
