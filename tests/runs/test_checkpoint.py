"""Checkpoints written by a background thread hold the state of the moment they were taken."""

from __future__ import annotations

import pytest
import torch

from lion_bench.runs.checkpoint import CHECKPOINT_FILE, CheckpointWriter

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_background_checkpoint_is_the_state_when_saved(tmp_path, device):
    device = torch.device(device)
    model = torch.nn.Linear(1024, 1024).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    writer = CheckpointWriter(tmp_path)
    for step in range(3):
        model(torch.randn(64, 1024, device=device)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 1:
            expected = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
            expected_momentum = optimizer.state_dict()["state"][0]["exp_avg"].cpu().clone()
            writer.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, device)
            # Training goes on at once, changing every tensor the checkpoint was taken from.
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.mul_(-3.0)
    writer.wait()
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)  # not a run's checkpoint: no load_checkpoint
    assert saved["step"] == 1
    assert all(torch.equal(saved["model"][key], expected[key]) for key in expected)
    assert torch.equal(saved["optimizer"]["state"][0]["exp_avg"], expected_momentum)
    assert not list(tmp_path.glob(f".{CHECKPOINT_FILE}.*.tmp"))


def test_a_failed_write_is_raised_by_wait(tmp_path):
    writer = CheckpointWriter(tmp_path / "missing" / "run")
    (tmp_path / "missing").write_text("a file where a directory should be")
    writer.save({"x": torch.zeros(3)}, torch.device("cpu"))
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # the error is raised once
