"""A one-layer transformer that groks modular addition: the setting of Nanda et al. (2023), ready to train.

Nanda, Chan, Lieberum, Smith & Steinhardt (2023, "Progress measures for grokking via mechanistic
interpretability", arXiv:2301.05217) train a one-layer transformer on (a + b) mod 113 from 30% of
all pairs, full batch, with AdamW (lr 1e-3, betas (0.9, 0.98), weight decay 1). Each example is
the three tokens ``a b =`` and the answer is read out at the ``=`` position. The model has token
and positional embeddings, one attention block (4 heads), one ReLU MLP and an unembedding, and no
LayerNorm.

The training loop, its metrics and the accuracy events are the MLP demo's
(`grokking_setup.train_grokking`, `memorisation_step`, `grokking_step`): the loop only needs a
model that maps the split's inputs to logits, so the split here holds token rows instead of one-hot
codes (`transformer_data`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from oinfo_monitor.experiments.data import ModularArithmetic, modular_arithmetic
from oinfo_monitor.experiments.grokking_setup import GrokkingConfig


@dataclass(frozen=True)
class TransformerConfig:
    """One run; the defaults are Nanda et al.'s setting (the demo's CPU defaults differ, see its docs).

    ``d_model`` is the width of the residual stream, ``heads`` the number of attention heads
    (``d_model`` must divide by it) and ``d_mlp`` the number of hidden ReLU neurons of the MLP.

    Examples:
        >>> config = TransformerConfig()
        >>> config.p, config.train_fraction, config.d_model, config.heads, config.d_mlp
        (113, 0.3, 128, 4, 512)
        >>> config.training().weight_decay
        1.0
    """

    p: int = 113
    train_fraction: float = 0.3
    data_seed: int = 0
    d_model: int = 128
    heads: int = 4
    d_mlp: int = 512
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1.0
    steps: int = 40000
    seed: int = 0

    def __post_init__(self) -> None:
        """Check the shape; the training values are checked by `GrokkingConfig` (see `training`)."""
        if min(self.d_model, self.heads, self.d_mlp) < 1 or self.d_model % self.heads:
            raise ValueError(
                f"d_model, heads and d_mlp must be positive and d_model divisible by heads, got "
                f"d_model={self.d_model}, heads={self.heads}, d_mlp={self.d_mlp}"
            )
        self.training()

    def training(self) -> GrokkingConfig:
        """The values the shared training loop reads (`grokking_setup.train_grokking`): data, AdamW, steps."""
        shared = (
            "p",
            "train_fraction",
            "data_seed",
            "lr",
            "betas",
            "weight_decay",
            "steps",
            "seed",
        )
        return GrokkingConfig(hidden=self.d_mlp, **{name: getattr(self, name) for name in shared})

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON values."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values


class GrokkingTransformer(nn.Module):
    """Tokens ``a b =`` → embeddings + positions → attention (residual) → ReLU MLP (residual) → logits at ``=``.

    Submodules, by name: ``embed`` (tokens 0..p-1 and ``=`` = p), ``attn`` (an
    `nn.MultiheadAttention` without biases, batch first), ``mlp_in``, ``act`` (the ReLU, whose
    output is the MLP's hidden neurons), ``mlp_out`` and ``unembed``; ``pos`` is the positional
    embedding. Every weight matrix starts N(0, 1/d_model) and every bias at zero.

    Only the ``=`` position's stream reaches the readout of a one-layer model, so the block
    computes the attention query and the MLP at that position alone (keys and values come from
    all three tokens): the logits and their gradients are those of the full three-position model
    read out at ``=``, causal mask or not, at about a third of the cost. The outputs of ``attn``
    and ``act`` are ``[batch, 1, features]``: the answer token only.

    Examples:
        >>> model = GrokkingTransformer(p=7, d_model=8, heads=2, d_mlp=16)
        >>> model(torch.tensor([[1, 2, 7], [3, 4, 7]])).shape
        torch.Size([2, 7])
    """

    def __init__(self, p: int, d_model: int, heads: int, d_mlp: int) -> None:
        """Build the named submodules for (a + b) mod `p`."""
        super().__init__()
        self.embed = nn.Embedding(p + 1, d_model)
        self.pos = nn.Parameter(torch.empty(3, d_model))
        self.attn = nn.MultiheadAttention(d_model, heads, bias=False, batch_first=True)
        self.mlp_in = nn.Linear(d_model, d_mlp)
        self.act = nn.ReLU()
        self.mlp_out = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, p, bias=False)
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if name.endswith("bias"):
                    parameter.zero_()
                else:
                    parameter.normal_(0.0, 1 / math.sqrt(d_model))

    def answer_stream(self, tokens: Tensor) -> Tensor:
        """The residual stream at the ``=`` position after the MLP, ``[batch, 1, d_model]``."""
        x = self.embed(tokens) + self.pos
        answer = x[:, -1:]
        answer = answer + self.attn(answer, x, x, need_weights=False)[0]
        return answer + self.mlp_out(self.act(self.mlp_in(answer)))

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits ``[batch, p]`` of the answer, read out at the ``=`` position (the last token)."""
        return self.unembed(self.answer_stream(tokens)[:, -1])


def tokens(pairs: Tensor, p: int) -> Tensor:
    """The model's inputs ``a b =`` for rows of (a, b): int64 ``[n, 3]`` with ``=`` as token `p`.

    Examples:
        >>> tokens(torch.tensor([[3, 5]]), p=7)
        tensor([[3, 5, 7]])
    """
    equals = torch.full((len(pairs), 1), p, dtype=torch.long, device=pairs.device)
    return torch.cat([pairs.long(), equals], dim=1)


def transformer_data(config: TransformerConfig) -> ModularArithmetic:
    """The MLP demo's seeded split of (a + b) mod p with token rows (`tokens`) as ``x_train``/``x_test``.

    Examples:
        >>> data = transformer_data(TransformerConfig(p=7, train_fraction=0.3))
        >>> tuple(data.x_train.shape), tuple(data.x_test.shape), data.x_train.dtype
        ((14, 3), (35, 3), torch.int64)
    """
    data = modular_arithmetic(config.p, "+", config.train_fraction, config.data_seed)
    return replace(
        data,
        x_train=tokens(data.pairs_train, config.p),
        x_test=tokens(data.pairs_test, config.p),
    )


def build_transformer(config: TransformerConfig) -> GrokkingTransformer:
    """A freshly initialised model for `config`, seeded by ``config.seed`` without touching the global RNG.

    Examples:
        >>> first = build_transformer(TransformerConfig(p=7, d_model=8, heads=2, d_mlp=16))
        >>> again = build_transformer(TransformerConfig(p=7, d_model=8, heads=2, d_mlp=16))
        >>> torch.equal(first.embed.weight, again.embed.weight)
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return GrokkingTransformer(config.p, config.d_model, config.heads, config.d_mlp)
