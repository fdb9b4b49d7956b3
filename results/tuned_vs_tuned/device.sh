#!/usr/bin/env bash
# Prepares a lent GPU machine for study 2 (it has torch and triton; hydra-core, omegaconf and antlr4 travel as
# wheels in .whl/, the two corpora as .carry/*.xz): installs the wheels, makes the package importable from the
# repository root, and unpacks the corpora into /tmp/data. Source it: `. results/tuned_vs_tuned/device.sh`.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD
[ -e lion_bench/configs ] || ln -s ../configs lion_bench/configs   # installed, configs/ is lion_bench.configs
mkdir -p /tmp/data
for packed in .carry/*.xz; do
  [ -f "/tmp/data/$(basename "$packed" .xz)" ] || xz -dc "$packed" > "/tmp/data/$(basename "$packed" .xz)"
done
python3 -c "import torch, triton, hydra; print('torch', torch.__version__, 'triton', triton.__version__, 'hydra', hydra.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
