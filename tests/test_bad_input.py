"""Every bad input is refused up front: one line on stderr that says what to do, exit status 2, and
nothing written. The table runs through the real entry point (``lion_bench.train.main``, as the
``lion-bench`` console script does) in this process, each case a fraction of a second; a
representative few also run as subprocesses of the real command line.

The closing counts of issue 11 come from here: every row is a bad input tried; each must end with
exit status 2 and its message (a clear error), never a traceback, a silent acceptance or a hang.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import warnings

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from lion_bench.train import main

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

# (arguments, a fragment of the one-line message). DATA is replaced by a directory of prepared inputs.
BAD_INPUTS = [
    # trainer: types, ranges and relations
    (["trainer.eval_every=0"], "trainer.eval_every must be a whole number >= 1, got 0"),
    (["trainer.log_every=0"], "trainer.log_every must be a whole number >= 1, got 0"),
    (["trainer.max_steps=0"], "trainer.max_steps must be a whole number >= 1, got 0"),
    (["trainer.max_steps=-5"], "trainer.max_steps must be a whole number >= 1, got -5"),
    (["trainer.max_steps=2.5"], "trainer.max_steps must be a whole number >= 1, got 2.5"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be a whole number >= 1, got 'abc'"),
    (["trainer.batch_size=abc"], "trainer.batch_size must be a whole number >= 1, got 'abc'"),
    (["trainer.batch_size=0"], "trainer.batch_size must be a whole number >= 1, got 0"),
    (["trainer.batch_size=true"], "trainer.batch_size must be a whole number >= 1, got True"),
    (["trainer.grad_accum_steps=0"], "trainer.grad_accum_steps must be a whole number >= 1, got 0"),
    (["trainer.grad_clip=-1"], "trainer.grad_clip must be a number >= 0, got -1"),
    (["trainer.grad_clip=abc"], "trainer.grad_clip must be a finite number >= 0, got 'abc'"),
    (["trainer.grad_clip=inf"], "trainer.grad_clip must be a finite number >= 0, got inf"),
    (["trainer.divergence_factor=1"], "trainer.divergence_factor must be a number > 1, got 1"),
    (["trainer.divergence_factor=0.5"], "trainer.divergence_factor must be a number > 1, got 0.5"),
    (["trainer.precision=fp16"], "trainer.precision must be one of auto, fp32, bf16, got 'fp16'"),
    (["trainer.compile=maybe"], "trainer.compile must be one of auto, True, False, got 'maybe'"),
    (["trainer.progress=sometimes"], "trainer.progress must be one of auto, True, False, got 'sometimes'"),
    (["trainer.budget=epochs"], "trainer.budget must be one of steps, tokens, got 'epochs'"),
    (["trainer.budget=tokens", "trainer.reference_batch_size=0"], "trainer.reference_batch_size must be a whole number >= 1"),
    (["trainer.checkpoint_every=-1"], "trainer.checkpoint_every must be a whole number >= 0, got -1"),
    (["trainer.checkpoint_minutes=-1"], "trainer.checkpoint_minutes must be a number >= 0, got -1"),
    (["trainer.schedule.name=step"], "trainer.schedule.name must be one of cosine, linear, constant, inverse_sqrt"),
    (["trainer.schedule.warmup_steps=-1"], "trainer.schedule.warmup_steps must be auto or a whole number >= 0, got -1"),
    (["trainer.schedule.warmup_steps=some"], "trainer.schedule.warmup_steps must be auto or a whole number >= 0"),
    (["trainer.schedule.warmup_steps=1000", "trainer.max_steps=5"],
     "trainer.schedule.warmup_steps=1000 is not below the run's 5 steps"),
    (["trainer.max_steps=5", "trainer.schedule.warmup_steps=5"], "trainer.schedule.warmup_steps=5 is not below the run's 5 steps"),
    (["trainer.max_steps=1", "trainer.schedule.warmup_fraction=0.9"], "warmup_fraction=0.9 (1 steps) is not below the run's 1 steps"),
    (["trainer.budget=tokens", "trainer.batch_size=512", "trainer.schedule.warmup_steps=20"], "is not below the run's 6 steps"),
    (["trainer.schedule.warmup_fraction=1.0"], "trainer.schedule.warmup_fraction must be null or a number in [0, 1)"),
    (["trainer.schedule.final_fraction=2"], "trainer.schedule.final_fraction must be a number in [0, 1], got 2"),
    (["+trainer.foo=1"], "unknown config key trainer.foo; remove it"),
    (["~trainer.eval_every"], "trainer.eval_every is missing"),
    # the AdamW reference and the optimizer
    (["base.lr=0"], "base.lr must be a number > 0, got 0"),
    (["base.lr=-1"], "base.lr must be a number > 0, got -1"),
    (["base.lr=abc"], "base.lr must be a finite number > 0, got 'abc'"),
    (["base.lr=nan"], "base.lr must be a finite number > 0, got nan"),
    (["base.weight_decay=-0.1"], "base.weight_decay must be a number >= 0, got -0.1"),
    (["optimizer.lr_divisor=0"], "optimizer.lr_divisor must be a number > 0, got 0"),
    (["optimizer.wd_multiplier=-1"], "optimizer.wd_multiplier must be a number >= 0, got -1"),
    (["optimizer.betas=[1.2,0.9]"], "optimizer.betas must be a list whose items each"),
    (["optimizer.betas=[0.9]"], "optimizer.betas must be a list of 2 items, got [0.9]"),
    (["optimizer.betas=abc"], "optimizer.betas must be a list of 2 items, got 'abc'"),
    (["optimizer.decay_vectors=maybe"], "optimizer.decay_vectors must be true or false, got 'maybe'"),
    (["optimizer.cautious=1"], "optimizer.cautious must be true or false, got 1"),
    (["optimizer.impl=fused"], "optimizer.impl must be one of auto, torch, foreach, triton, got 'fused'"),
    (["optimizer=adamw", "optimizer.impl=triton"], "optimizer.impl must be one of auto, fused, foreach, for_loop"),
    (["optimizer=adamw", "optimizer.eps=0"], "optimizer.eps must be a number > 0, got 0"),
    (["optimizer=adamw", "+optimizer.cautious=true"], "optimizer.cautious is a Lion setting; AdamW has no cautious"),
    (["optimizer.name=sgd"], "unknown optimizer 'sgd'; valid optimizers: adamw, lion"),
    (["optimizer.name=../../X"], "unknown optimizer '../../X'; valid optimizers: adamw, lion"),
    (["optimizer.state_dtype=fp16"], "optimizer.state_dtype must be null or one of fp32, bf16, got 'fp16'"),
    (["optimizer.state_dtype=bf16", "optimizer.impl=foreach"], "optimizer.state_dtype=bf16 (bf16 momentum) needs optimizer.impl=triton"),
    (["optimizer.maximize=perhaps"], "optimizer.maximize must be null or true or false, got 'perhaps'"),
    (["optimizer=sgd"], "optimizer=sgd is not an option of optimizer; its options: adamw, lion"),
    (["arm=lion_div4"], "arm=lion_div4 is not an option of arm; did you mean arm=lion_div5"),
    # the machine, the seed, the top level, interpolations
    (["device=tpu"], "device='tpu' is not a device; use auto, cpu, cuda or cuda:N"),
    (["device=cpu:1"], "device='cpu:1' is not one lion-bench trains on; use auto, cpu, cuda or cuda:N"),
    (["device=meta"], "device='meta' is not one lion-bench trains on"),
    pytest.param(["device=cuda"], "device='cuda' but CUDA is not available here; use device=cpu", marks=NO_CUDA),
    pytest.param(["device=cuda:7"], "device='cuda:7' but CUDA is not available here", marks=NO_CUDA),
    (["device=3"], "device must be a non-empty string, got 3"),
    (["seed=-1"], "seed must be a whole number >= 0, got -1"),
    (["seed=abc"], "seed must be a whole number >= 0, got 'abc'"),
    (["seed=../../../X"], "seed must be a whole number >= 0, got '../../../X'"),
    (["seed=1.5"], "seed must be a whole number >= 0, got 1.5"),
    (["+foo=1"], "unknown config key foo; remove it"),
    (["base.lr=${nope}"], "the config does not resolve"),
    (["sweep=lr_ratio", "sweep.name=../../x"], "sweep.name must be a name of letters, digits, _ . -"),
    # loggers
    (["logger=wandb", "logger.mode=sometimes"], "logger.mode must be null or one of online, offline, disabled"),
    (["logger=wandb", "logger.init_timeout=0"], "logger.init_timeout must be a number > 0, got 0"),
    (["logger=wandb", "+logger.api_key=abc"], "unknown config key logger.api_key; remove it"),
    (["logger.name=tensorboard"], "unknown logger 'tensorboard'; valid loggers: none, wandb"),
    # the text task: model, data and evaluation
    (["task.model.n_head=3"], "task.model.n_head=3 must divide task.model.d_model=128"),
    (["task.model.d_model=0"], "task.model.d_model must be a whole number >= 1, got 0"),
    (["task.model.seq_len=0"], "task.model.seq_len must be a whole number >= 1, got 0"),
    (["task.model.seq_len=1000000"], "is too small for windows of task.model.seq_len=1000000"),
    (["task.model.dropout=1.5"], "task.model.dropout must be a number in [0, 1), got 1.5"),
    (["task.data.max_bytes=0"], "task.data.max_bytes must be null or a whole number >= 1, got 0"),
    (["task.data.max_bytes=-1"], "task.data.max_bytes must be null or a whole number >= 1, got -1"),
    (["task.data.max_bytes=1000"], "is too small for windows of task.model.seq_len=128"),
    (["task.data.val_fraction=0"], "task.data.val_fraction must be a number in (0, 1), got 0"),
    (["task.data.val_fraction=1.5"], "task.data.val_fraction must be a number in (0, 1), got 1.5"),
    (["task.data.block_bytes=0"], "task.data.block_bytes must be a whole number >= 1, got 0"),
    (["task.data.path=/nonexistent/corpus.txt"], "task.data.path='/nonexistent/corpus.txt' does not exist"),
    (["task.data.path=/dev/zero", "task.data.max_bytes=100000"], "task.data.path='/dev/zero' is not a regular file"),
    (["task.data.path=DATA/fifo"], "is not a regular file or directory (a device, FIFO or socket)"),
    (["task.data.path=DATA/empty_dir"], "is a directory without regular files"),
    (["task.data.path=DATA/empty.txt"], "holds no bytes"),
    (["task.data.path=DATA/tiny.txt"], "is too small for windows of task.model.seq_len=128"),
    (["task.eval.num_windows=0"], "task.eval.num_windows must be a whole number >= 1, got 0"),
    (["task.eval.batch_size=0"], "task.eval.batch_size must be a whole number >= 1, got 0"),
    (["task.eval.final=everything"], "task.eval.final must be one of sample, full_valid, got 'everything'"),
    (["task.eval.stride=1000"], "task.eval.stride=1000 must be at most task.model.seq_len=128"),
    (["task.name=vision"], "unknown task 'vision'; valid tasks:"),
    # the other tasks
    (["task=quadratic", "task.dim=0"], "task.dim must be a whole number >= 1, got 0"),
    (["task=quadratic", "task.condition_number=0.5"], "task.condition_number must be a number >= 1, got 0.5"),
    (["task=quadratic", "task.noise=-1"], "task.noise must be a number >= 0, got -1"),
    (["task=image", "task.data.source=mnist"], "task.data.source must be one of digits, cifar10, got 'mnist'"),
    (["task=image", "task.model.channels=[]"], "task.model.channels must be a list of at least 1 items, got []"),
    (["task=image", "task.model.channels=[16,0]"], "task.model.channels must be a list whose items each"),
    (["task=mlp", "task.data.source=iris"], "task.data.source must be one of teacher, breast_cancer, wine, digits"),
    (["task=mlp", "task.model.activation=swish"], "task.model.activation must be one of relu, gelu, tanh"),
    (["task=mlp", "task.model.hidden=[0]"], "task.model.hidden must be a list whose items each"),
    (["task=lstm_conv", "task.model.kernel_size=0"], "task.model.kernel_size must be a whole number >= 1, got 0"),
    (["task=lstm_conv", "task.model.num_conv_layers=-1"], "task.model.num_conv_layers must be a whole number >= 0"),
    (["task=enwik8", "task.data.path=/nonexistent/enwik8.zip"], "task.data.path='/nonexistent/enwik8.zip' is not a regular file"),
    (["task=enwik8", "task.eval.final=everything"], "task.eval.final must be one of sample, full_valid, full_test"),
    (["task=enwik8", "task.data.source=web"], "task.data.source must be null or one of file, hf, got 'web'"),
    (["task=enwik8", "task.data.download=maybe"], "task.data.download must be true or false, got 'maybe'"),
    # Hydra's command-line surface: nothing that Hydra would import and call
    (["+optimizer._target_=os.system"], "the override '+optimizer._target_=os.system' is refused"),
    (["+task.data._target_=os.system"], "is refused: Hydra would import and call what it names"),
    (["+hydra.callbacks.evil._target_=os.system"], "the override '+hydra.callbacks.evil._target_=os.system' is refused"),
    (["hydra.callbacks.sweep_summary._target_=os.system"], "is refused: Hydra would import and call"),
    (["~hydra.callbacks.preflight"], "the override '~hydra.callbacks.preflight' is refused"),
    (["+hydra.sweeper.custom_search_space=os.system"], "is refused: Hydra would import and call"),
    # names: a typo gets the closest names, a key of another choice the reason (never Hydra's "use +")
    (["optimzer=adamw"], "unknown config group optimzer; did you mean optimizer=adamw?"),
    (["+optimzer=adamw"], "did you mean optimizer=adamw?"),
    (["optimizer=adamww"], "optimizer=adamww is not an option of optimizer; did you mean optimizer=adamw?"),
    (["trainer.max_step=5"], "unknown config key trainer.max_step; did you mean trainer.max_steps?"),
    (["+trainer.max_step=5"], "unknown config key trainer.max_step; did you mean trainer.max_steps?"),
    (["trainr.max_steps=5"], "unknown config key trainr.max_steps; did you mean trainer.max_steps?"),
    (["sed=1"], "unknown config key sed; did you mean seed=1?"),
    (["task.model.dmodel=64"], "unknown config key task.model.dmodel; did you mean task.model.d_model?"),
    (["~trainer.eval_evry"], "unknown config key trainer.eval_evry; did you mean trainer.eval_every"),
    (["optimizer=adamw", "optimizer.lr_divisor=10"], "optimizer.lr_divisor is a Lion setting; AdamW trains at base.lr"),
    (["arm=adamw", "optimizer.wd_multiplier=10"],
     "optimizer.wd_multiplier is a Lion setting; AdamW's weight decay is base.weight_decay"),
    (["task=quadratic", "task.model.d_model=64"],
     "task.model.d_model is a task=enwik8 or task=text setting; task=quadratic has no model.d_model"),
    (["-m", "sweep=quickstart", "optimizer.cautious=true"], "optimizer.cautious is a Lion setting; AdamW has no cautious"),
    (["task=lstm_conv", "task.eval.stride=4"], "task.eval.stride is not set by task=lstm_conv; add it with +task.eval.stride=4"),
    # sweeps: a problem no trial changes is refused before any trial directory exists
    (["-m", "seed=0,1", "trainer.grad_clip=-1"], "trainer.grad_clip must be a number >= 0, got -1"),
    (["-m", "sweep=quickstart", "trainer.max_steps=5", "trainer.schedule.warmup_steps=10"], "is not below the run's 5 steps"),
    (["-m", "optimizer=adamw,lion", "task.data.path=/dev/zero"], "is not a regular file or directory"),
    (["-m", "sweep=nope"], "sweep=nope is not an option of sweep; its options: batch_lr_grid,"),
    # the packed and workers launchers (lion_bench/sweeps/launcher.py)
    (["-m", "seed=0,1", "hydra/launcher=packed", "hydra.launcher.pack=0"], "hydra.launcher.pack must be a whole number >= 1, got 0"),
    (["-m", "seed=0,1", "hydra/launcher=workers", "hydra.launcher.workers=abc"], "hydra.launcher.workers must be a whole number"),
    (["-m", "seed=0,1", "hydra/launcher=workers", "hydra.launcher.gpus=x"], "hydra.launcher.gpus must be null or a list of GPU"),
    (["-m", "seed=0,1", "hydra/launcher=packed", "hydra.launcher.gpus=[0,1]"], "set hydra.launcher.workers >= 2"),
    # --- issue 18 -------------------------------------------------------------------------------
    # identity: sweeps whose trials would not each keep a directory of their own, named by the trial id
    (["-m", "sweep=quickstart,lr_ratio"], "sweep=quickstart,lr_ratio: sweep presets cannot be combined in one sweep"),
    (["-m", "sweep=glob(*)"], "sweep presets cannot be combined in one sweep"),
    (["-m", "hydra.sweep.subdir=${hydra.job.num}", "seed=0,1"], "hydra.sweep.subdir=${hydra.job.num} is refused"),
    (["-m", "hydra.sweep.subdir=."], "hydra.sweep.subdir=. is refused"),
    (["-m", "hydra.sweep.subdir=x"], "hydra.sweep.subdir=x is refused"),
    (["-m", "hydra.sweep.subdir=${seed}", "optimizer=adamw,lion"], "hydra.sweep.subdir=${seed} is refused"),
    (["-m", "hydra.sweep.subdir=../escaped"], "hydra.sweep.subdir=../escaped is refused"),
    (["-m", "hydra.sweep.subdir=/tmp/escaped"], "hydra.sweep.subdir=/tmp/escaped is refused"),
    (["-m", "hydra.sweep.subdir=${trial_dir:}/x"], "each trial's directory must be named by its trial id"),
    (["-m", "hydra.sweep.subdir=${trial_dir:}${seed}"], "each trial's directory must be named by its trial id"),
    # derived values: the lr and weight decay that ratio space resolves to, seeds, whole numbers
    (["optimizer.lr_divisor=1e-320"], "the resolved lr base.lr / optimizer.lr_divisor = 0.002 / 1e-320 = inf is not"),
    (["optimizer=adamw", "+optimizer.lr_divisor=1e-320"], "the resolved lr base.lr / optimizer.lr_divisor"),
    (["base.lr=1e308"], "= 3.33e+307 is above 3.4e+38, the largest float32"),
    (["optimizer=adamw", "base.lr=1e39", "base.weight_decay=0"], "the resolved lr base.lr = 1e+39 is above 3.4e+38"),
    (["optimizer=adamw", "base.lr=1e-320"], "the resolved lr base.lr = 1e-320 is below 1.2e-38, the smallest normal"),
    (["optimizer.lr_divisor=1e300"], "is below 1.2e-38, the smallest normal float32"),
    (["optimizer.wd_multiplier=1e308", "base.weight_decay=10"], "the resolved weight decay base.weight_decay * "
                                                                 "optimizer.wd_multiplier = 10 * 1e+308 = inf is not"),
    (["optimizer=adamw", "base.lr=2", "base.weight_decay=1"], "1 - lr * weight_decay = 1 - 2 * 1 = -1, which flips"),
    (["optimizer=adamw", "base.lr=1", "base.weight_decay=1"], "= 0, which zeroes them; keep lr * weight_decay below 1"),
    (["base.lr=3", "base.weight_decay=1", "optimizer.wd_multiplier=1"], "1 - lr * weight_decay = 1 - 1 * 1 = 0"),
    (["optimizer.decoupled_weight_decay=true", "base.weight_decay=0.5"],
     "with optimizer.decoupled_weight_decay=true each step multiplies the decayed weights by 1 - weight_decay"),
    (["seed=18446744073709551616"], "seed must be a whole number below 2**64 (the range of torch's random generators)"),
    (["seed=1000000000000000000000000000000"], "seed must be a whole number below 2**64"),
    (["task=image", "task.data.split_seed=18446744073709551616"], "task.data.split_seed must be a whole number below 2**64"),
    (["task=mlp", "task.data.problem_seed=18446744073709551616"], "task.data.problem_seed must be a whole number below"),
    (["task=quadratic", "task.problem_seed=18446744073709551616"], "task.problem_seed must be a whole number below 2**64"),
    ([f"trainer.max_steps={10**40}"], "trainer.max_steps must be a whole number below 2**63, got 100000000000... (41 digits)"),
    ([f"trainer.batch_size={2**63}"], "trainer.batch_size must be a whole number below 2**63"),
    ([f"task.data.max_bytes={10**30}"], "task.data.max_bytes must be null or a whole number below 2**63"),
    # option combinations against the device, model shapes against the data
    (["optimizer.state_dtype=bf16", "device=cpu"], "optimizer.state_dtype=bf16 (bf16 momentum) needs Lion's fused Triton "
                                                    "kernel, which optimizer.impl=auto does not use here"),
    (["task=image", "task.model.channels=[4,4,4,4]"], "task.model.channels=[4, 4, 4, 4] has 4 stages, but each halves "
                                                      "the image and the digits images are 8x8: at most 3 stages"),
    (["task=image", "task.model.channels=[1,1,1,1,1,1,1,1]"], "at most 3 stages"),
    # memory: runs no machine can hold (what one machine has is tested apart, with its memory set)
    (["trainer.batch_size=1000000000"], "the activations of a batch of 1000000000"),
    (["task.model.n_layer=10000", "task.model.d_model=2048", "task.model.n_head=1"], "this run needs at least"),
    (["task.model.d_model=10000000", "task.model.n_head=1"], "parameters with their gradients and lion state"),
    (["task=mlp", "task.data.num_val=1000000000000000"], "this run needs at least"),
    (["task=mlp", "task.model.hidden=[1000000000000]"], "this run needs at least"),
    (["task=quadratic", "task.dim=1000000000000000"], "this run needs at least"),
    (["task=lstm_conv", "task.model.hidden_size=100000000"], "this run needs at least"),
    (["task=image", "trainer.batch_size=100000000000"], "this run needs at least"),
    (["-m", "seed=0,1", "trainer.batch_size=1000000000"], "this run needs at least"),
    # output locations: under /proc or /sys, at or under a file, too long, not a directory
    (["hydra.run.dir=/proc/lion_bench_x"], "hydra.run.dir: the run's directory /proc/lion_bench_x is on /proc, a proc "
                                           "file system"),
    (["output_root=/proc/lion_bench_x"], "output_root=/proc/lion_bench_x: the run's directory /proc/lion_bench_x/runs/"),
    (["output_root=/proc/self/lion_bench"], "a proc file system of the kernel's own entries"),
    (["-m", "hydra.sweep.dir=/proc/lion_bench_x"], "hydra.sweep.dir: the sweep's directory /proc/lion_bench_x is on"),
    (["-m", "output_root=/proc/lion_bench_x"], "output_root=/proc/lion_bench_x: the sweep's directory"),
    (["output_root=/sys/lion_bench_x"], "is on /sys, a sysfs file system"),
    (["output_root=DATA/afile"], "afile is a file, not a directory; choose another output_root"),
    (["hydra.run.dir=DATA/afile"], "afile exists and is a file, not a directory; choose another hydra.run.dir"),
    (["-m", "hydra.sweep.dir=DATA/afile"], "afile exists and is a file, not a directory; choose another hydra.sweep.dir"),
    (["output_root=DATA/afile/sub"], "cannot be made:"),
    (["output_root=/dev/null/x"], "cannot be made: /dev/null is a device, not a directory"),
    (["hydra.run.dir=DATA/fifo"], "fifo exists and is a FIFO, not a directory"),
    (["output_root=DATA/dangling"], "dangling is a broken symbolic link"),
    (["output_root=DATA/dangling/below"], "dangling is a broken symbolic link"),
    ([f"output_root=DATA/{'x' * 300}"], "has a name of 300 bytes (xxxxxxxxxxxxxxxx...), more than the file system's "
                                        "limit of 255"),
    ([f"hydra.run.dir='DATA/{'é' * 128}'"], "has a name of 256 bytes"),
    (["-m", f"hydra.sweep.dir=DATA/{'x' * 300}"], "has a name of 300 bytes"),
    (["hydra.run.dir=DATA/" + "/".join(["y" * 200] * 25)], "bytes long: with the 64 bytes of names lion-bench puts "
                                                            "inside it, its files' paths would pass"),
    (["-m", "hydra.sweep.dir=DATA/" + "/".join(["y" * 200] * 20)], "bytes long: with the 165 bytes of names"),
    (["hydra.run.dir=${nope}"], "hydra.run.dir does not resolve"),
    # --- issue 26 -------------------------------------------------------------------------------
    (["task=mlp", "task.data.source=wine", "task.data.val_fraction=0.999"],
     "task.data.val_fraction=0.999 leaves no training examples of the 178; use at most 0.994"),
    (["hydra.output_subdir=../../.."], "hydra.output_subdir=../../.. is refused: Hydra's copy of the config goes in"),
    (["-m", "hydra.output_subdir=a/b"], "hydra.output_subdir=a/b is refused"),
    (["-m", "hydra.sweep.dir=DATA/sweep"], "multirun.yaml is a directory: Hydra writes the sweep's config there"),
]
PLUGIN_INPUTS = [
    ("hydra_plugins.hydra_ray_launcher", ["-m", "hydra/launcher=ray"], "pip install 'lion-bench[ray]'"),
    ("hydra_plugins.hydra_optuna_sweeper", ["-m", "sweep=optuna"], "pip install 'lion-bench[optuna]'"),
    ("hydra_plugins.hydra_submitit_launcher", ["-m", "hydra/launcher=slurm"], "pip install 'lion-bench[slurm]'"),
    ("wandb", ["logger=wandb"], "logger=wandb needs wandb, which is not installed: pip install 'lion-bench[wandb]'"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Inputs that are not text corpora: a FIFO, an empty directory, an empty and a tiny file."""
    directory = tmp_path_factory.mktemp("data")
    os.mkfifo(directory / "fifo")
    (directory / "empty_dir").mkdir()
    (directory / "empty.txt").write_bytes(b"")
    (directory / "tiny.txt").write_bytes(b"hello world\n" * 10)
    (directory / "afile").write_text("a file, not a directory\n")
    (directory / "dangling").symlink_to(directory / "nowhere")
    (directory / "sweep" / "multirun.yaml").mkdir(parents=True)
    return directory


def run_entry_point(arguments, output_root, monkeypatch, capsys):
    """``lion-bench ARGUMENTS output_root=...`` through the console script's function, in this process."""
    flags = [a for a in arguments if a.startswith("-") and not a.startswith("~")]
    overrides = [a for a in arguments if a not in flags]
    monkeypatch.setattr(sys, "argv", ["lion-bench", *flags, f"output_root={output_root}", *overrides])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own
    previous = signal.getsignal(signal.SIGTERM)
    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        GlobalHydra.instance().clear()
        signal.signal(signal.SIGTERM, previous)
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def assert_refused(code, out, err, message, output_root):
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lion-bench: "), err
    assert message in lines[0]
    assert "Traceback" not in out + err and "To append to your config use +" not in err
    assert not output_root.exists() or not any(output_root.rglob("*")), sorted(output_root.rglob("*"))


@pytest.mark.parametrize("arguments, message", BAD_INPUTS)
def test_bad_input_is_refused_with_one_line_and_exit_status_2(arguments, message, data_dir, tmp_path, monkeypatch,
                                                              capsys):
    arguments = [argument.replace("DATA", str(data_dir)) for argument in arguments]
    output_root = tmp_path / "out"
    code, out, err = run_entry_point(arguments, output_root, monkeypatch, capsys)
    assert_refused(code, out, err, message, output_root)


@pytest.mark.parametrize("module, arguments, message", PLUGIN_INPUTS)
def test_a_missing_plugin_names_its_extra(module, arguments, message, tmp_path, monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real_find_spec(name, *a))
    code, out, err = run_entry_point(arguments, tmp_path / "out", monkeypatch, capsys)
    assert_refused(code, out, err, message, tmp_path / "out")


def test_the_table_covers_at_least_60_bad_inputs():
    assert len(BAD_INPUTS) + len(PLUGIN_INPUTS) >= 60


@pytest.mark.parametrize("arguments, message", [
    (["trainer.eval_every=0"], "trainer.eval_every must be a whole number >= 1, got 0"),
    (["task.data.path=/dev/zero", "task.data.max_bytes=100000"], "is not a regular file or directory"),
    (["+hydra.callbacks.evil._target_=builtins.print"], "is refused: Hydra would import and call"),
    (["-m", "seed=0,1", "trainer.batch_size=abc"], "trainer.batch_size must be a whole number >= 1, got 'abc'"),
    (["optimizer=sgd"], "optimizer=sgd is not an option of optimizer; its options: adamw, lion"),
    (["optimzer=adamw"], "did you mean optimizer=adamw?"),
])
def test_the_real_command_refuses_bad_input(arguments, message, tmp_path):
    flags = [a for a in arguments if a.startswith("-")]
    overrides = [a for a in arguments if a not in flags]
    result = subprocess.run([sys.executable, "-m", "lion_bench.train", *flags, f"output_root={tmp_path / 'out'}",
                             *overrides], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert_refused(result.returncode, result.stdout, result.stderr, message, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no outputs/ or multirun.yaml either


# --- issue 18: what the table cannot say in one row -------------------------------------------------
@pytest.mark.parametrize("patch, message", [
    ("statvfs", "is on a read-only file system"),
    ("access", "is not writable by this user"),
])
@pytest.mark.parametrize("key", ["output_root", "hydra.run.dir", "hydra.sweep.dir"])
def test_a_read_only_or_unwritable_output_location_is_refused(patch, message, key, tmp_path, monkeypatch, capsys):
    """A read-only file system and a directory this user may not write, simulated (the tests may run as
    root, who writes anywhere, and cannot mount): the walk up stops at ``locked``, which exists."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_statvfs, real_access = os.statvfs, os.access
    if patch == "statvfs":
        monkeypatch.setattr(os, "statvfs", lambda path: type("Read", (), {"f_flag": os.ST_RDONLY})()
                            if str(path).startswith(str(locked)) else real_statvfs(path))
    else:
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path).startswith(str(locked))
                            else real_access(path, mode, **kw))
    arguments = (["-m"] if key == "hydra.sweep.dir" else []) + [f"{key}={locked / 'out'}"]
    output_root = locked / "out" if key == "output_root" else tmp_path / "root"
    code, out, err = run_entry_point(arguments, output_root, monkeypatch, capsys)
    assert_refused(code, out, err, message, output_root)
    assert f"choose another {key}" in err and sorted(locked.iterdir()) == []


@pytest.mark.parametrize("arguments, needed", [
    (["task.model.n_layer=10000"], "139 GB"),  # the examples, on a machine with 16 GB free
    (["trainer.batch_size=1000000000"], "2.29 PB"),
    (["task=quadratic", "task.dim=100000000", "task.outputs=4"], "423 GB"),
])
def test_a_run_that_cannot_fit_is_refused_with_both_numbers(arguments, needed, tmp_path, monkeypatch, capsys):
    import lion_bench.estimates

    monkeypatch.setattr(lion_bench.estimates, "available_memory_bytes", lambda device: 16 * 10**9)
    code, out, err = run_entry_point(["device=cpu", *arguments], tmp_path / "out", monkeypatch, capsys)
    assert_refused(code, out, err, f"this run needs at least {needed} of cpu memory", tmp_path / "out")
    assert "but 16 GB is available; lower trainer.batch_size or the model's size" in err


def test_the_default_run_fits_and_is_not_refused():
    """The memory check never refuses a run that fits: the default config and the quickstart preset."""
    import lion_bench.checks
    import lion_bench.estimates
    from compose import compose_config

    for overrides in ([], ["sweep=quickstart"], ["task=image"], ["task=mlp"], ["task=lstm_conv"]):
        config = lion_bench.checks.resolved_config(compose_config(["device=cpu", *overrides]))
        assert lion_bench.estimates.memory_problem(config, torch.device("cpu")) is None, overrides


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton installed")
def test_the_triton_kernel_on_the_cpu_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    code, out, err = run_entry_point(["optimizer.impl=triton", "device=cpu"], tmp_path / "out", monkeypatch, capsys)
    assert_refused(code, out, err, "optimizer.impl=triton runs Lion's fused kernel on CUDA devices, and the device here "
                                   "is cpu (device=cpu); use optimizer.impl=foreach", tmp_path / "out")


def test_bad_input_the_task_finds_leaves_an_existing_run_directory_as_it_was(tmp_path, monkeypatch, capsys):
    """The task is built before the run's directory is read or repaired: a refusal moves nothing of it."""
    from compose import compose_config
    from omegaconf import OmegaConf

    from lion_bench.identity import config_trial_dir_name

    arguments = ["task=mlp", "task.data.source=wine", "task.data.val_fraction=0.999", "trainer.progress=false"]
    config = OmegaConf.to_container(compose_config([*arguments, f"output_root={tmp_path / 'out'}"]), resolve=True)
    run_dir = tmp_path / "out" / "runs" / f"mlp_{config_trial_dir_name(config)}"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{damaged")
    (run_dir / ".run.json.tmp").write_text("a killed write")
    (run_dir / "metrics.jsonl").mkdir()
    before = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    code, out, err = run_entry_point(arguments, tmp_path / "out", monkeypatch, capsys)
    assert code == 2 and err.splitlines() == ["lion-bench: task.data.val_fraction=0.999 leaves no training examples "
                                              "of the 178; use at most 0.994"], err
    after = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if ".hydra" not in path.parts)
    assert after == before and (run_dir / "run.json").read_text() == "{damaged"
