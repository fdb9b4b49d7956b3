"""The ``lion-bench`` command around Hydra: what is refused before Hydra composes a config or makes a
directory, and how the command ends: bad input is one line on stderr and exit status 2, leaving
nothing on disk; Ctrl-C and SIGTERM are one line and 130 / 143 (a sweep's count line before it);
never a traceback for either, nor for a second signal while the command shuts down.

Command-line overrides that Hydra would import and call (``_target_`` anywhere, ``hydra.callbacks``,
logging ``()`` factories, the Optuna sweeper's ``custom_search_space``) are refused: a command line
copied from elsewhere, or assembled by a script, must not be able to run arbitrary code. The app's
own callbacks are fixed in configs/train.yaml.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.lion_bench_launcher.launcher import LionBenchLauncher
from lion_bench.config_names import command_line_names_problem, option_problem
from lion_bench.checks import input_problems, resolved_config
from lion_bench.runs import interrupts
from lion_bench.runs.errors import BadInput, Interrupted
from lion_bench.runs.locations import RUN_DIR_ROOM, TRIAL_DIR_ROOM, directory_problem
from lion_bench.schema import Problem
from lion_bench.sweeps.callbacks import SweepSummary

# Exit status of a command given bad input (as argparse uses).
BAD_INPUT_EXIT = 2
CALLABLE_KEYS = ("_target_", "_partial_", "_args_", "()", "custom_search_space")
# group=option -> (the Hydra plugin module it needs, the lion-bench extra that installs it)
PLUGINS = {
    ("sweep", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    ("hydra/sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    ("hydra/launcher", "ray"): ("hydra_plugins.hydra_ray_launcher", "ray"),
    ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}
# group=option -> (a library it needs besides Hydra plugins, the lion-bench extra that installs it)
LIBRARIES = {("logger", "wandb"): ("wandb", "wandb")}
# An arm (configs/arm/, package _global_) sets the optimizer: sweeping arms sweeps optimizer keys.
GROUP_COVERS = {"arm": ("arm", "optimizer")}


def command_line_problem(arguments: list[str]) -> str | None:
    """What is wrong with the command line before Hydra sees it, or None."""
    parser = OverridesParser.create()
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument and not argument.startswith("~"):
            continue  # flags (-m, --cfg job) and their values are Hydra's
        try:
            [override] = parser.parse_overrides([argument])
        except Exception:  # noqa: BLE001 - Hydra reports a malformed override itself
            continue
        key = override.key_or_group
        if key.split(".")[-1] in CALLABLE_KEYS or key == "hydra.callbacks" or key.startswith("hydra.callbacks."):
            return (f"the override {argument!r} is refused: Hydra would import and call what it names (any code). "
                    "lion-bench builds optimizers, tasks and loggers by name (optimizer=lion, task=text); "
                    "its callbacks are fixed in configs/train.yaml")
        value = override.value() if not override.is_sweep_override() else None
        plugin = PLUGINS.get((key, value)) if isinstance(value, str) else None
        if plugin and not _installed(plugin[0]):
            return (f"{argument} needs a Hydra plugin that is not installed: pip install 'lion-bench[{plugin[1]}]' "
                    f"(see README)")
        library = LIBRARIES.get((key, value)) if isinstance(value, str) else None
        if library and not _installed(library[0]):
            return (f"{argument} needs {library[0]}, which is not installed: pip install 'lion-bench[{library[1]}]' "
                    f"(or {key}=none)")
    return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False
    except ValueError:  # in sys.modules without a spec (put there by hand): importable
        return True


def swept_keys(cfg: DictConfig) -> set[str]:
    """Config keys a multirun gives other values per trial: command-line sweeps (``seed=0,1``) and
    the sweeper's ``params`` (presets in configs/sweep/)."""
    overrides = OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)
    keys = {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()}
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    keys |= set(params or ())
    return {covered for key in keys for covered in GROUP_COVERS.get(key, (key,))}


def varies_per_trial(problem: Problem, swept: set[str]) -> bool:
    """Whether a problem involves a key (or a subtree holding one) that the sweep varies."""
    return any(key == s or key.startswith(f"{s}.") or s.startswith(f"{key}.") for key in problem.keys for s in swept)


def fail(message: str, status: int = BAD_INPUT_EXIT) -> None:
    print(f"lion-bench: {message}", file=sys.stderr, flush=True)
    interrupts.finished(status)
    raise SystemExit(status)


class Preflight(Callback):
    """Checks the composed config before Hydra makes any directory (registered in train.yaml).

    A single run with bad input ends here with one line and exit status 2. A sweep is refused here
    when its base config is bad in a way no trial changes (a key nobody sweeps); a bad value that
    only some trials get (``seed=0,x``) fails those trials, recorded, and the sweep goes on. Hydra
    turns an Exception raised in a callback into a warning, so this raises SystemExit.

    Besides the config: where the run's (or sweep's) directory would go (``output_location_problem``)
    and, for a sweep, whether its trials keep one directory each (``sweep_layout_problem``)."""

    def check(self, config: DictConfig, swept: set[str]) -> None:
        try:
            problems = input_problems(resolved_config(config))
        except BadInput as error:
            fail(str(error))
        blocking = [problem for problem in problems if not varies_per_trial(problem, swept)]
        if blocking:
            fail(blocking[0].message)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(config, set())
        problem = output_location_problem(config, "run") or output_subdir_problem(config)
        if problem:
            fail(problem)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = sweep_layout_problem(config)
        if problem:
            fail(problem)
        self.check(config, swept_keys(config))
        problem = (output_location_problem(config, "sweep") or output_subdir_problem(config)
                   or multirun_file_problem(config))
        if problem:
            fail(problem)


def output_subdir_problem(config: DictConfig) -> str | None:
    """``hydra.output_subdir`` (where Hydra copies the config, inside each run's directory): null, or one
    folder name; anything else would put Hydra's files outside the run's directory or over its own."""
    subdir = OmegaConf.select(config, "hydra.output_subdir", default=None)
    if subdir is None or (isinstance(subdir, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", subdir)
                          and subdir not in (".", "..")):
        return None
    return (f"hydra.output_subdir={subdir} is refused: Hydra's copy of the config goes in a folder of each run's "
            "directory; use a folder name (.hydra, the default) or null (no copy)")


def multirun_file_problem(config: DictConfig) -> str | None:
    """The sweep directory's ``multirun.yaml`` (Hydra writes the sweep's config there) when something other
    than a file stands in its place."""
    path = Path(str(OmegaConf.select(config, "hydra.sweep.dir"))) / "multirun.yaml"
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "a directory" if path.is_dir() else "not a regular file"
        return (f"{shown_path(path)} is {kind}: Hydra writes the sweep's config there; remove or rename it, or "
                "choose another hydra.sweep.dir")
    return None


# The trial directory Hydra makes for each sweep job (configs/train.yaml): named by the trial id.
TRIAL_SUBDIR = "${trial_dir:}"


def sweep_layout_problem(config: DictConfig) -> str | None:
    """Why a sweep's trials would not each get a directory of their own inside the sweep directory,
    or None. A trial is skipped when its directory holds its finished record, so two trials must
    never share one: sweep presets cannot be combined in one sweep (each names the sweep directory
    and its own trials), and ``hydra.sweep.subdir`` must hold the trial id (``${trial_dir:}``, the
    default; a fixed prefix or suffix of letters, digits, _ . - may go around it)."""
    overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.key_or_group.split("@")[0] == "sweep" and override.is_sweep_override():
            try:
                names = list(override.sweep_string_iterator())
            except Exception:  # noqa: BLE001 - glob(*) needs the config groups to list
                names = ["NAME"]
            commands = ", then ".join(f"lion-bench -m sweep={name}" for name in names)
            return (f"{override.input_line}: sweep presets cannot be combined in one sweep (each names its sweep "
                    f"directory and its own trials); run them one after the other: {commands}")
    subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
    rest = str(subdir).replace(TRIAL_SUBDIR, "", 1)
    if TRIAL_SUBDIR not in str(subdir) or not re.fullmatch(r"[A-Za-z0-9_.-]*", rest):
        return (f"hydra.sweep.subdir={subdir} is refused: each trial's directory must be named by its trial id "
                f"({TRIAL_SUBDIR}, the default), or a rerun or another sweep would take one trial's record for "
                "another's, or put a trial outside the sweep directory; to move the sweep, set hydra.sweep.dir or "
                "output_root")
    return None


def output_location_problem(config: DictConfig, mode: str) -> str | None:
    """Why the directory of a run (``mode`` run: ``hydra.run.dir``) or of a sweep (``sweep``:
    ``hydra.sweep.dir``, its trials' directories inside) cannot be made and written, or None. Names
    the key to change: the Hydra key when the command line set it, else ``output_root``."""
    key = f"hydra.{mode}.dir"
    try:
        path = str(OmegaConf.select(config, key, throw_on_resolution_failure=True))
    except Exception as error:  # noqa: BLE001 - an interpolation that points nowhere
        return f"{key} does not resolve: {_one_line(error)}"
    problem = directory_problem(path, room=TRIAL_DIR_ROOM if mode == "sweep" else RUN_DIR_ROOM)
    if problem is None:
        return None
    overridden = any(override.lstrip("+").startswith(f"{key}=") for override in config.hydra.overrides.hydra)
    setting = key if overridden else f"output_root={_shortened(str(OmegaConf.select(config, 'output_root')))}"
    what = "the run's directory" if mode == "run" else "the sweep's directory"
    return f"{setting}: {what} {_shortened(path)} {problem}; choose another {setting.split('=')[0]}"


def _shortened(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else f"{text[:limit - 30]}...{text[-27:]}"


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"lion-bench: warning: {message}\n"


def _one_line(error: BaseException) -> str:
    """Hydra's composition error as our one line: a missing option names the closest ones, and Hydra's
    advice to add an unknown key with ``+`` (a second error when the key is a typo) is left out."""
    text = str(error).split("Config search path")[0]  # Hydra's list of where it looked: noise here
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'\s*Available options in '[^']*':((?:\s+\S+)*)", text)
    if missing:
        return option_problem(missing.group(1), missing.group(2), missing.group(3).split())
    text = re.sub(r"\s*To append to your config use \+\S+", "", text)
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it (shorter lines), else as is."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def interrupted_line(stop: Interrupted) -> str:
    """The one line of an interrupt: the step it stopped at, what was kept, what the rerun does."""
    if stop.step is None or not stop.record_path:
        return "interrupted; rerun the same command to resume"
    where = shown_path(Path(stop.record_path).parent)
    if stop.result:
        return f"interrupted after the run {stop.result} (step {stop.step}); its record is in {where}"
    if stop.resume_step == stop.step:
        return f"interrupted at step {stop.step}, saved in {where}; rerun the same command to resume"
    rerun = (f"resumes from step {stop.resume_step}, its last checkpoint" if stop.resume_step
             else "restarts the trial from step 0")
    return f"interrupted at step {stop.step}, not saved: {stop.note}; the same command {rerun} ({where})"


def run(hydra_main: Callable[[], Any], arguments: list[str] | None = None) -> None:
    """Run the Hydra app ``hydra_main`` as the command ``lion-bench`` with ``arguments`` (sys.argv)."""
    arguments = sys.argv[1:] if arguments is None else arguments
    problem = command_line_problem(arguments) or command_line_names_problem(arguments)
    if problem:
        fail(problem)
    # Hydra re-raises what it caught instead of printing it and exiting 1: this function reports it.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    # hydra/launcher=packed|workers: Hydra's scan of hydra_plugins misses it in an editable install.
    Plugins.instance().register(LionBenchLauncher)
    warnings.formatwarning = _format_warning
    interrupts.install()  # Ctrl-C and SIGTERM: at a step boundary in training, at once elsewhere
    try:
        hydra_main()
    except Interrupted as stop:
        sweep = SweepSummary.running
        count = sweep.interrupted_line() if sweep is not None else None
        if count:
            print(count, flush=True)
        fail(interrupted_line(stop), stop.exit_status)
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume", 128 + signal.SIGINT)
    except BadInput as error:
        fail(str(error))
    except (HydraException, OmegaConfBaseException) as error:  # composition: a bad override or config name
        fail(_one_line(error))
    except BrokenPipeError:  # whoever read the output went away (lion-bench --help | head): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit fails too
        interrupts.finished(1)
        raise SystemExit(1) from None
    except SystemExit as exiting:  # a refusal (fail) or a sweep's closing status: its line is out
        interrupts.finished(exiting.code if isinstance(exiting.code, int) else 1)
        raise
    except BaseException:  # a traceback follows: a signal while it prints ends the process quietly
        interrupts.finished(1)
        raise
    interrupts.finished(0)


__all__ = ["BAD_INPUT_EXIT", "Preflight", "command_line_problem", "output_location_problem", "run",
           "sweep_layout_problem", "swept_keys"]
