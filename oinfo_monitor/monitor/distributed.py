"""The monitor under `torch.distributed`: every rank scores a share of the work, rank 0 writes.

Every rank runs the probe through its own replica of the model (under DDP the replicas hold the
same weights), scores the layers it owns and runs its share of every due layer's surrogate
searches (the chance levels; a model with one monitored layer is split that way too); the shares
are exchanged over a gloo group of their own, so the exchange never mixes with the training's
collectives (NCCL or gloo), even from the background worker's thread. Rank 0 assembles and writes the evaluation; the values are those a
single process computes, since each layer is scored by the same code with the same seeds. A check
sum of each layer's activations travels with the shares: if the ranks' activations differ (ranks
that do not hold the same weights), the step is skipped and rank 0 evaluates alone from then on,
as it does when the exchange itself fails (e.g. a rank that stopped calling `step`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
from torch import Tensor, nn

from oinfo_monitor.monitor.scoring import LayerScorer, Scores

EXCHANGE_TIMEOUT = timedelta(minutes=10)
"""How long a rank waits for the others' shares before giving the split up (rank 0 then works alone)."""

_CHECKSUM_RTOL = 1e-6


def world() -> tuple[int, int]:
    """(this process's global rank, the number of ranks); (0, 1) outside `torch.distributed`.

    Examples:
        >>> world()
        (0, 1)
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def balanced_owners(widths: Mapping[str, int], ranks: int) -> dict[str, int]:
    """Which rank scores each layer: widest layers first, each to the least-loaded rank so far
    (load = the sum of its layers' widths), the same on every rank.

    Examples:
        >>> balanced_owners({"a": 100, "b": 80, "c": 30, "d": 20}, 2)
        {'a': 0, 'b': 1, 'c': 1, 'd': 0}
    """
    load = [0] * ranks
    owners: dict[str, int] = {}
    for name in sorted(widths, key=lambda layer: -widths[layer]):
        rank = min(range(ranks), key=lambda r: (load[r], r))
        owners[name] = rank
        load[rank] += widths[name]
    return {name: owners[name] for name in widths}


def sharded(model: nn.Module) -> bool:
    """Whether the model's parameters are sharded over the ranks (FSDP or FSDP2), so that its
    forward is a collective every rank must join.

    Examples:
        >>> sharded(nn.Linear(2, 2))
        False
    """
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters()) or any(
        isinstance(m, FullyShardedDataParallel) for m in model.modules()
    )


def checksum(values: Tensor) -> float:
    """A fingerprint of one layer's activations, compared across ranks (float64 sum of all entries)."""
    return float(values.detach().double().sum())


@dataclass
class RankShare:
    """This rank's part of every evaluation: the layers it scores, and whether it writes.

    Outside `torch.distributed`, or with the split off, rank 0 owns every layer and is the only
    rank that takes part; with the split on, every rank takes part in every evaluation.
    """

    rank: int = 0
    ranks: int = 1
    owners: dict[str, int] = field(default_factory=dict)
    group: Any = None

    @classmethod
    def build(cls, widths: Mapping[str, int], split: bool, model: nn.Module) -> RankShare:
        """This process's share: the layers split over the ranks when `split` and there are
        several ranks and gloo (a collective: every rank must build its monitor). A sharded
        `model` without the split raises: its probe would run on rank 0 alone and wait forever."""
        rank, ranks = world()
        dist = torch.distributed
        if ranks == 1 or not split or not dist.is_gloo_available():
            if ranks > 1 and sharded(model):
                raise ValueError(
                    "the model's parameters are sharded (FSDP): every rank must run the probe, "
                    "which needs split_ranks=True and torch.distributed's gloo backend"
                )
            return cls(rank, ranks, dict.fromkeys(widths, 0))
        group = dist.new_group(backend="gloo", timeout=EXCHANGE_TIMEOUT)
        return cls(rank, ranks, balanced_owners(widths, ranks), group)

    @property
    def splitting(self) -> bool:
        """Whether the ranks share the evaluations."""
        return self.group is not None

    @property
    def takes_part(self) -> bool:
        """Whether this rank evaluates at all (every rank when splitting, else rank 0 only)."""
        return self.splitting or self.rank == 0

    def stop(self) -> None:
        """Give the split up: rank 0 evaluates every layer alone from now on."""
        self.group = None
        self.owners = dict.fromkeys(self.owners, 0)

    def agree(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (e.g. the last step of a resumed history)."""
        if not self.splitting:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def scores(
        self, step: int, captured: Mapping[str, Tensor] | Exception, scorer: LayerScorer
    ) -> Scores | None:
        """Score this rank's share of the evaluation at `step` (`LayerScorer.share`) and gather
        every share: rank 0 gets every layer's score (`LayerScorer.merge`), the others None."""
        work = functools.partial(scorer.share, step, self.owners, self.rank, self.ranks)
        works = self.exchange(captured, work)
        return None if works is None else scorer.merge(step, works)

    def exchange(
        self, captured: Mapping[str, Tensor] | Exception, work: Callable[[dict[str, Tensor]], Any]
    ) -> list[Any] | None:
        """Do this rank's `work` on `captured` (every layer's activations; the work picks its
        share) and exchange the results: rank 0 gets every rank's, in rank order, the other
        ranks None.

        Raises (on every rank alike, so that all ranks skip the step) when a rank failed to
        capture or score, when the ranks' activations differ, or when the exchange failed; the
        last two stop the split.
        """
        if isinstance(captured, Exception):
            payload: tuple[Any, dict[str, float]] | str = _failure(captured)
        else:
            try:
                sums = {name: checksum(values) for name, values in captured.items()}
                payload = (work(dict(captured)), sums)
            except Exception as error:  # reported by every rank, below
                payload = _failure(error)
        shares: list[Any] = [None] * self.ranks
        try:
            torch.distributed.all_gather_object(shares, payload, group=self.group)
        except Exception as error:
            self.stop()
            raise RuntimeError(f"the ranks' shares could not be exchanged ({error})") from None
        for rank, share in enumerate(shares):
            if isinstance(share, str):
                raise RuntimeError(f"rank {rank}: {share}")
        reference = shares[0][1]
        for rank, (_, sums) in enumerate(shares):
            if any(not math.isclose(sums[n], reference[n], rel_tol=_CHECKSUM_RTOL) for n in sums):
                self.stop()
                raise RuntimeError(
                    f"rank {rank}'s activations differ from rank 0's: the ranks do not hold the "
                    "same weights, so rank 0 evaluates alone from now on"
                )
        if self.rank != 0:
            return None
        return [result for result, _ in shares]


def _failure(error: Exception) -> str:
    """An exception as the text another rank can receive (not every exception pickles)."""
    return f"{type(error).__name__}: {error}"
