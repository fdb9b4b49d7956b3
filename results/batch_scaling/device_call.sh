#!/usr/bin/env bash
# One call on a lent GPU machine for studies 3 and 2: study 3's batch sizes in the protocol's order and study 2's
# transformer (its amendment's weight-decay extension) side by side until a deadline, the records packed into
# $OUT/runs.tgz every minute and at the end, so a call cut off at its limit still brings back what finished.
#   bash results/batch_scaling/device_call.sh 480     # seconds of runs (leave ~60 s of the call's limit for packing)
# Then, here: tar xzf runs.tgz, keeping only trial directories that are new (a rerun's skipped trials keep theirs).
set -u
. results/tuned_vs_tuned/device.sh > "$OUT/setup.txt" 2>&1 || { cat "$OUT/setup.txt"; exit 1; }
export PYTHONUNBUFFERED=1
END=$(( $(date +%s) + ${1:-480} ))
pack() {
  mkdir -p results/batch_scaling/runs results/tuned_vs_tuned/runs/lm_pydoc
  tar czf "$OUT/.runs.tgz" --exclude='*.pt' results/batch_scaling/runs results/tuned_vs_tuned/runs/lm_pydoc 2>/dev/null
  mv "$OUT/.runs.tgz" "$OUT/runs.tgz"
}
nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/gpu.txt"
(while sleep 60; do pack; done) &
packer=$!
python3 results/tuned_vs_tuned/run.py --part lm_pydoc --corpus pydoc=/tmp/data/pydoc_html.txt --workers 2 \
  --until "$END" > "$OUT/log_s2.txt" 2>&1 &
study2=$!
python3 results/batch_scaling/run.py --batch 1024 256 64 16 --corpus /tmp/data/pydoc_html.txt --until "$END" \
  > "$OUT/log.txt" 2>&1
wait "$study2"
kill "$packer" 2>/dev/null
pack
tail -n 4 "$OUT/log.txt" "$OUT/log_s2.txt"
