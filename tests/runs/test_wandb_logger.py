"""logger=wandb with the real wandb library in offline mode: no network, no account."""

import json
import time
from pathlib import Path

import pytest
from compose import InterruptAt
from hydra import compose, initialize_config_module

from lion_bench.runs.loggers import build_loggers
from lion_bench.runs.wandb_logger import WandbLogger, init_kwargs
from lion_bench.runs.errors import BadInput
from lion_bench.train import run_one
from lion_bench.trainer import train

wandb = pytest.importorskip("wandb")

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


def compose_cfg(*overrides):
    with initialize_config_module("lion_bench.configs", version_base="1.3"):
        return compose("train", overrides=[
            "task=quadratic", "trainer.progress=false", "trainer.max_steps=20", "trainer.eval_every=10", "trainer.schedule.warmup_steps=0",
            "trainer.log_every=5", *overrides,
        ])


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    for name in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def wait_for_run_file(runs: list[Path], expected: list[bytes], timeout_s: float = 30.0) -> bool:
    """wandb-core writes a finished run's file in the background: poll until one holds every string."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in runs:
            data = b"".join(path.read_bytes() for path in run.glob("run-*.wandb"))
            if all(item in data for item in expected):
                return True
        time.sleep(0.2)
    return False


def offline_runs(root: Path) -> list[Path]:
    return sorted((root / "wandb").glob("offline-run-*"))


def test_offline_run_directory_holds_the_metrics(wandb_env):
    tmp = wandb_env
    seeds = (0, 1)
    records = []
    for seed in seeds:  # two jobs in one process, like a Hydra multirun: each gets its own W&B run
        cfg = compose_cfg("logger=wandb", "logger.mode=offline", f"logger.dir={tmp / 'wb'}", f"seed={seed}",
                          "optimizer=lion", "logger.tags=[smoke]")
        loggers = build_loggers(cfg)
        assert [type(logger) for logger in loggers] == [WandbLogger]
        records.append(train(cfg, tmp / f"run{seed}", loggers))
        assert loggers[0].run is None and not loggers[0].failed
    runs = offline_runs(tmp / "wb")
    assert len(runs) == len(seeds)
    for record in records:
        assert record["status"] == "finished"
        # The final val loss reaches W&B as the JSON text of the same float the local record holds.
        final = json.dumps(record["final_val_loss"])
        expected = [final.encode(), record["trial_id"].encode(), b"val_loss", b"train_loss",
                    f"bs16 s{record['seed']}".encode(),
                    # define_metric: the val loss summary holds the last value and the minimum.
                    f'"last":{final}'.encode(), f'"min":{json.dumps(record["best_val_loss"])}'.encode()]
        assert wait_for_run_file(runs, expected), f"no offline run holds the metrics of seed {record['seed']}"
    for path in tmp.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), f"API key written to {path}"


def test_init_kwargs_name_group_tags_and_env_fallbacks(wandb_env, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = compose_cfg("logger=wandb", "optimizer=lion", "optimizer.lr_divisor=10", "seed=3",
                      "trainer.batch_size=8", "trainer.grad_accum_steps=2", "logger.tags=[a,b]")
    kwargs = init_kwargs(cfg)
    assert kwargs["project"] == "from-env" and kwargs["mode"] == "disabled"
    assert kwargs["name"] == "quadratic lion lr/10 wd*3 b0.9,0.99 bs16 s3"
    assert kwargs["job_type"] == "lion" and kwargs["tags"] == ["a", "b"] and kwargs["group"] is None
    assert kwargs["config"]["hyperparameters"]["lr"] == pytest.approx(cfg.task.base_lr / 10)
    assert kwargs["config"]["trainer"]["batch_size"] == 8
    cfg = compose_cfg("logger=wandb", "logger.project=explicit", "logger.mode=offline", "+sweep={name: lr_ratio}")
    kwargs = init_kwargs(cfg)
    assert kwargs["project"] == "explicit" and kwargs["mode"] == "offline" and kwargs["group"] == "lr_ratio"


def test_bad_config_fails_before_a_wandb_run_opens(wandb_env, monkeypatch):
    opened = []
    monkeypatch.setattr(wandb, "init", lambda **kwargs: opened.append(kwargs))
    with pytest.raises(BadInput, match="max_steps"):
        run_one(compose_cfg("logger=wandb", "logger.mode=offline", "trainer.max_steps=0"), wandb_env / "run")
    assert opened == [] and not (wandb_env / "run").exists()


def test_bad_logger_config_fails_before_training(wandb_env):
    with pytest.raises(ValueError, match="online, offline, disabled"):
        build_loggers(compose_cfg("logger=wandb", "logger.mode=sometimes"))
    with pytest.raises(ValueError, match="WANDB_API_KEY"):
        build_loggers(compose_cfg("logger=wandb", f"+logger.api_key={FAKE_KEY}"))
    with pytest.raises(ValueError, match="none, wandb"):
        build_loggers(compose_cfg("logger.name=tensorboard"))
    assert build_loggers(compose_cfg()) == []


def test_wandb_failure_warns_and_the_local_record_is_written(wandb_env, monkeypatch):
    init_seconds = 1.5

    def unreachable(**kwargs):
        time.sleep(init_seconds)
        raise wandb.errors.CommError("network is unreachable")

    monkeypatch.setattr(wandb, "init", unreachable)
    cfg = compose_cfg("logger=wandb", "logger.mode=online")
    with pytest.warns(RuntimeWarning, match="CommError: network is unreachable"):
        loggers = build_loggers(cfg)
    record = train(cfg, wandb_env / "run", loggers)
    assert record["status"] == "finished" and loggers[0].failed
    # W&B's start-up (here a slow failure) is not part of the run's measured time.
    assert record.time_s["total"] < init_seconds
    assert json.loads((wandb_env / "run" / "run.json").read_text())["trial_id"] == record["trial_id"]


def test_a_resumed_trial_continues_its_own_wandb_run(wandb_env):
    run_dir = wandb_env / "sweep" / "trial"
    cfg = compose_cfg("logger=wandb", "logger.mode=offline", "trainer.checkpoint_every=5", "trainer.log_every=1")
    first, again, other = init_kwargs(cfg, run_dir), init_kwargs(cfg, run_dir), init_kwargs(cfg, wandb_env / "other")
    assert first["id"] == again["id"] != other["id"] and first["resume"] == "allow"

    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, [*build_loggers(cfg, run_dir), InterruptAt(8)])
    time.sleep(1.1)  # W&B names offline runs by the second they start
    record = train(cfg, run_dir, build_loggers(cfg, run_dir))
    assert record.resumed_from_step == 5
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(run.name.endswith(f"-{first['id']}") for run in runs)
