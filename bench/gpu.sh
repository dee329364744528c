#!/usr/bin/env bash
# The GPU measurements, one part per device call (each fits in 10 minutes), results as JSON under $OUT.
# Carry .whl/ (keras, optuna, keras-tuner, plotly... for the GPU machine's Python) and .gpu-data/ (the
# Fashion-MNIST *.gz files), then run e.g. `bash bench/gpu.sh speed`. Parts:
#   speed    plain model.fit vs the trial path vs the on-device loop, every architecture, batch 32 and 256
#   study    `hpsearch study cnn --trials 50 --epochs 50` on fashion10, wall time and best accuracy
#   workers  finished trials per hour with --workers 1 and 4 on one GPU
#   peers    hpsearch vs KerasTuner Hyperband, same space, data and budget
set -euo pipefail
part=${1:?usage: bash bench/gpu.sh speed|study|workers|peers}
out=${OUT:-/tmp/out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
[ -f /tmp/data/train.csv ] || python3 -m search data prepare --source .gpu-data --out /tmp/data --labels fashion10
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" || true
case "$part" in
  speed)   python3 bench/trial_speed.py --data /tmp/data --subset 12000 --epochs 4 --repeats 3 | tee "$out/speed.json" ;;
  study)   /usr/bin/time -v python3 -m search study cnn --trials 50 --epochs 50 --data /tmp/data \
             --storage sqlite:////tmp/study.db 2>&1 | tee "$out/study.log"
           python3 -m search trials cnn --storage sqlite:////tmp/study.db > "$out/study_trials.txt" ;;
  workers) python3 bench/workers.py --data /tmp/data --workers 1,4 --timeout 150 --epochs 5 | tee "$out/workers.json" ;;
  peers)   python3 bench/peers.py --data /tmp/data --subset 48000 --epochs 9 --budget 200 --seeds 1 | tee "$out/peers.json" ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
