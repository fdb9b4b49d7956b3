"""The byte LMs' evaluation loop as of commit 5eccfa7 (2026-12-06), before issue 20: windows gathered on
the host from the host copy of the split, each chunk's inputs and targets copied to the device through
pinned memory, two host reads at the end. Frozen here (the function below is that commit's
``ByteLMTask._sum_loss``, unchanged but for its name) so that ``benchmarks/profile_eval.py`` times today's
evaluation against it on the same device in the same run. Not used by the package.

Call it as ``sum_loss_v1(task, model, task.val_data, task.val_starts, torch.zeros_like(task.val_starts))``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


@torch.inference_mode()
def sum_loss_v1(self, model: nn.Module, data: torch.Tensor, starts: torch.Tensor, first_scored: torch.Tensor
                ) -> tuple[float, int]:
    """Summed loss (nats) over each window's targets from position ``first_scored[i]`` on."""
    was_training = model.training
    model.eval()
    # Summed on the device and read once at the end: no host sync per chunk.
    total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
    total_tokens = torch.zeros((), dtype=torch.int64, device=self.device)
    batch_size = int(self.cfg.eval.batch_size)
    positions = torch.arange(self.seq_len, device=self.device)
    for chunk, first in zip(starts.split(batch_size), first_scored.split(batch_size)):
        inputs, targets = self.to_device(self._windows(data, chunk))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            logits = model(inputs)
        # Per-target losses (batch, seq), classes along the contiguous last dimension (a transposed
        # (batch, classes, seq) input is several times slower).
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                 reduction="none").view(targets.shape)
        if bool((first == 0).all()):  # every target scored (first is on the host: no sync)
            total_loss += losses.sum()
            total_tokens += losses.numel()
        else:
            scored = positions >= self.to_device((first,))[0][:, None]
            total_loss += torch.where(scored, losses, 0.0).sum()
            total_tokens += scored.sum()
    model.train(was_training)
    return total_loss.item(), int(total_tokens.item())
