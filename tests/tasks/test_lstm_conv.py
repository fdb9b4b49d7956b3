"""The LSTM + convolution hybrid: a causal byte LM on the embedded corpus."""

from __future__ import annotations

import torch

from lion_bench.tasks import build_task
from lion_bench.tasks.lstm_conv import ConvLSTM
from lion_bench.trainer import train

CPU = torch.device("cpu")
TINY = ["task=lstm_conv", "task.data.max_bytes=200000", "task.model.seq_len=64", "task.eval.num_windows=16",
        "trainer.progress=false", "device=cpu"]


def test_model_is_causal():
    torch.manual_seed(0)
    model = ConvLSTM(embed_dim=16, kernel_size=4, num_conv_layers=2, hidden_size=32, num_lstm_layers=1)
    tokens = torch.randint(0, 256, (2, 20))
    changed = tokens.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 256
    before, after = model(tokens), model(changed)
    assert torch.equal(before[:, :12], after[:, :12])  # outputs before position 12 never see it
    assert not torch.allclose(before[:, 12:], after[:, 12:])


def test_lstm_conv_learns_bytes(make_config, tmp_path):
    cfg = make_config([*TINY, "optimizer=lion", "trainer.max_steps=60", "trainer.eval_every=60"])
    task = build_task(cfg.task, batch_size=16, seed=0, device=CPU)
    untrained = task.evaluate(task.build_model())
    record = train(cfg, tmp_path)
    assert record["status"] == "finished"
    assert untrained["val_loss"] > 5.0  # about ln(256) = 5.55 nats
    assert record["final_val_loss"] < untrained["val_loss"] - 1.5
    assert record["final_val_bpc"] < 5.5
