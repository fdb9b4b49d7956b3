"""A small decoder-only transformer over bytes (pre-LayerNorm, learned positions, tied embeddings),
with attention through ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lion_bench.runs.errors import BadInput


def transformer_counts(*, seq_len: int, d_model: int, n_layer: int, vocab_size: int = 256) -> tuple[int, int]:
    """(parameters of ``ByteTransformer``, values one token keeps for the backward pass, at least):
    per block 12 d^2 + 13 d parameters; per token and block the qkv projection (3 d), the MLP's
    hidden layer and its GELU (4 d each), and the logits (``vocab_size``). Attention weights are not
    counted (fused attention keeps none)."""
    block = 12 * d_model**2 + 13 * d_model
    params = vocab_size * d_model + seq_len * d_model + n_layer * block + 2 * d_model
    return params, n_layer * 11 * d_model + vocab_size


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.ln_attn = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:  # x: (batch, seq, d_model)
        batch, seq, d_model = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(d_model, dim=2)
        # (batch, n_head, seq, head_dim)
        q, k, v = (t.view(batch, seq, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, d_model))
        return x + self.mlp(self.ln_mlp(x))


class ByteTransformer(nn.Module):
    def __init__(
        self, *, vocab_size: int = 256, seq_len: int, d_model: int, n_layer: int, n_head: int, dropout: float = 0.0
    ):
        super().__init__()
        if d_model % n_head:
            raise BadInput(f"model width d_model={d_model} must be divisible by n_head={n_head}")
        self.seq_len = seq_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head, dropout) for _ in range(n_layer))
        self.ln_out = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.embed.weight
        self.apply(self._init)
        # GPT-2: scale residual projections by 1/sqrt(2 * n_layer).
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor) -> Tensor:  # tokens: (batch, seq) int64 -> logits (batch, seq, vocab)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_out(x))
