"""An LSTM + convolution hybrid: byte-level LM on the same corpus as ``task=text`` (the embedded
Python standard library sources, or ``task.data.path``). Causal 1-D convolutions over byte
embeddings feed an LSTM, whose states predict the next byte. Metric: val loss (nats/byte) and bpc.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.text import TextTask


class CausalConvBlock(nn.Module):
    """x + GELU(conv(x)), the convolution padded on the left only so position t sees bytes <= t."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.left_pad = kernel_size - 1
        self.conv = nn.Conv1d(channels, channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:  # x: (batch, channels, seq)
        return x + F.gelu(self.conv(F.pad(x, (self.left_pad, 0))))


class ConvLSTM(nn.Module):
    def __init__(
        self, *, vocab_size: int = 256, embed_dim: int, kernel_size: int, num_conv_layers: int,
        hidden_size: int, num_lstm_layers: int,
    ):
        super().__init__()
        if min(embed_dim, kernel_size, hidden_size, num_lstm_layers) < 1 or num_conv_layers < 0:
            raise BadInput(
                "lstm_conv model: embed_dim, kernel_size, hidden_size and num_lstm_layers must be >= 1, "
                "num_conv_layers >= 0"
            )
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.convs = nn.Sequential(*(CausalConvBlock(embed_dim, kernel_size) for _ in range(num_conv_layers)))
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers=num_lstm_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:  # tokens: (batch, seq) int64 -> logits (batch, seq, vocab)
        x = self.convs(self.embed(tokens).transpose(1, 2)).transpose(1, 2)
        states, _ = self.lstm(x)
        return self.head(states)


class LSTMConvTask(TextTask):
    name = "lstm_conv"
    description = "byte-level LM, causal convolutions + an LSTM, on the text task's corpus"

    @classmethod
    def model_counts(cls, model) -> tuple[int, int]:
        """(parameters of ``ConvLSTM``, values each token keeps at least: each convolution's output
        and GELU, each LSTM layer's output, the logits)."""
        embed, kernel, hidden = int(model["embed_dim"]), int(model["kernel_size"]), int(model["hidden_size"])
        num_conv, num_lstm = int(model["num_conv_layers"]), int(model["num_lstm_layers"])
        lstm = 4 * hidden * (embed + hidden) + 8 * hidden + (num_lstm - 1) * (4 * hidden * 2 * hidden + 8 * hidden)
        params = 256 * embed + num_conv * (kernel * embed**2 + embed) + lstm + 256 * hidden + 256
        return params, num_conv * 2 * embed + num_lstm * hidden + 256

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        model = self.cfg.model
        return ConvLSTM(
            embed_dim=int(model.embed_dim),
            kernel_size=int(model.kernel_size),
            num_conv_layers=int(model.num_conv_layers),
            hidden_size=int(model.hidden_size),
            num_lstm_layers=int(model.num_lstm_layers),
        )
