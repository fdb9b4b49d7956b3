"""Arms of an lr x weight-decay grid are compared on the same seeds: an arm that also ran the answer seeds (the
chosen arm of a tuned study) is never a mean over more seeds set against means over fewer. Planted: the extra
seeds are easy ones (every arm would be lower on them), so a mean over them would flip the choice."""

import math

from synthetic_runs import bowl, judged, only, write_run

from lion_bench.results.claims.selection import held_out_values, shared_seeds

EASY = -0.3  # the extra seeds' shared effect: lower loss at every arm that runs them


def write_wd_study(root, extra_seeds=range(3, 8)):
    """Both optimizers on lr grids (weight decay at each one's middle value) and weight-decay grids at their
    best lr, seeds 0-2; AdamW's best arm (2e-3, 0.1) and Lion's arm (4e-4, 1.5), worse than its best (4e-4, 0.5)
    on seeds 0-2, also ran ``extra_seeds``."""
    for seed in range(3):
        shared = 0.01 * seed
        for lr in (1e-3, 2e-3, 4e-3):
            write_run(root, "adamw", seed, bowl(lr, 2e-3) + shared, base_lr=lr, base_wd=0.1)
        for wd in (0.03, 0.3, 1.0):
            write_run(root, "adamw", seed, bowl(2e-3, 2e-3) + 0.2 * math.log10(wd / 0.1) ** 2 + shared,
                      base_lr=2e-3, base_wd=wd)
        for lr in (2e-4, 4e-4, 8e-4):
            write_run(root, "lion", seed, bowl(lr, 4e-4) + shared, base_lr=lr, base_wd=0.5)
        for wd in (0.15, 1.5, 5.0):
            write_run(root, "lion", seed, bowl(4e-4, 4e-4) + 0.2 * math.log10(wd / 0.5) ** 2 + shared,
                      base_lr=4e-4, base_wd=wd)
    for seed in extra_seeds:
        write_run(root, "adamw", seed, bowl(2e-3, 2e-3) + EASY + 0.01 * seed, base_lr=2e-3, base_wd=0.1)
        loss = bowl(4e-4, 4e-4) + 0.2 * math.log10(1.5 / 0.5) ** 2 + EASY + 0.01 * seed
        write_run(root, "lion", seed, loss, base_lr=4e-4, base_wd=1.5)


def test_the_weight_decay_advice_compares_arms_on_the_seeds_all_ran(tmp_path):
    write_wd_study(tmp_path)
    cell = only(judged(tmp_path), "paper_wd")
    # On seeds 0-2 Lion's best is wd 0.5 (lr x wd 2e-4, AdamW's 2e-4: ratio 1); the mean of (4e-4, 1.5) over
    # its 8 seeds would have looked best (ratio 3).
    assert cell.facts["point"] == {"AdamW": (2e-3, 0.1), "Lion": (4e-4, 0.5)}, cell.detail
    assert abs(cell.test.estimate - 1.0) < 1e-9
    assert "means over seeds 0,1,2 (every arm ran them)" in cell.detail


def test_tuned_leave_one_out_compares_arms_on_the_seeds_all_ran(tmp_path):
    write_wd_study(tmp_path)
    cell = only(judged(tmp_path), "tuned", judged_only=False)
    assert cell.facts["picks"]["lion"] == [(4e-4, 0.5)]  # never the 8-seed arm
    assert "other seeds of 0,1,2 (those every arm ran)" in cell.facts["selection"]
    # Tuneability's means are over the same seeds for every arm.
    assert cell.facts["lion"]["wd"] == 0.5 and cell.facts["lion"]["seeds"] == [0, 1, 2]
    assert "mean over seeds 0,1,2" in cell.detail


def test_shared_seeds_and_held_out_values_on_unequal_arms():
    import pandas as pd

    rows = [{"seed": seed, "lr_key": 1e-3, "wd_key": 0.0, "status": "finished", "final_val_loss": 3.0,
             "source": f"a{seed}"} for seed in range(3)]
    rows += [{"seed": seed, "lr_key": 1e-2, "wd_key": 0.0, "status": "finished",
              "final_val_loss": 3.1 if seed < 3 else 2.0, "source": f"b{seed}"} for seed in range(8)]
    runs = pd.DataFrame(rows)
    assert shared_seeds(runs) == [0, 1, 2]
    values, picks, how = held_out_values(runs, "final_val_loss")
    # Each seed at the arm best on the other shared seeds: lr 1e-3 (3.0 < 3.1); seeds 3-7 never ran it.
    assert set(picks) == {(1e-3, 0.0)} and values == {0: 3.0, 1: 3.0, 2: 3.0}
    assert how == "each seed at the arm best on the other seeds of 0,1,2 (those every arm ran)"
    # Named selection seeds: arms compared on exactly those.
    values, picks, how = held_out_values(runs, "final_val_loss", [0, 1], [2])
    assert picks == [(1e-3, 0.0)] and values == {2: 3.0} and how == "chosen on seeds 0,1"


def test_the_arms_table_shows_each_arm_on_the_seeds_every_arm_ran(tmp_path):
    from lion_bench.results.load import load_local
    from lion_bench.results.tables import summarize

    write_wd_study(tmp_path)
    runs, _ = load_local([tmp_path])
    summary = summarize(runs).set_index(["optimizer", "lr_key", "wd_key"])
    extra = summary.loc[("lion", 4e-4, 1.5)]
    assert extra["num_seeds"] == 8 and extra["shared_seeds"] == "0,1,2"
    # Over its 8 seeds it looks best; over the 3 every arm ran it is not.
    assert extra["final_val_loss_mean"] < summary.loc[("lion", 4e-4, 0.5), "final_val_loss_mean"]
    assert extra["final_val_loss_shared_mean"] > summary.loc[("lion", 4e-4, 0.5), "final_val_loss_shared_mean"]
