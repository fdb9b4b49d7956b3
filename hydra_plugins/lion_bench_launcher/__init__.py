"""lion-bench's Hydra launcher (``hydra/launcher=packed`` or ``workers``): Hydra instantiates launchers
only from the ``hydra_plugins`` package; the work is done in ``lion_bench.sweeps.launcher``."""
