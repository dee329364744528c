#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md, sized for a short lease: `all` fits one device call (BUDGET seconds,
# default 540, of a 600-s limit) and runs the parts marked (all) in turn; the others take a call each.
# Prepare on a machine with PyPI: `bash bench/gpu_wheels.sh` (wheels -> .whl/, Fashion-MNIST -> .gpu-data/),
# carry .whl and .gpu-data, then run e.g. `bash bench/gpu.sh all`. Results land in $OUT (at most 8 files):
# gpu.txt, log (everything printed, each timed run as it ends too), and one JSON or text file per part:
#   check    `hpsearch study cnn` without --backend: the device, backend and training path it picks, and
#            whether bfloat16 computes right there (search.objective.check_precision)                   (all)
#   speed    CNN model 7, batch 256, 4 epochs, 2 repeats (cold, then warm compilation cache): plain model.fit
#            vs the on-device loop in float32 and bfloat16 (bench/trial_speed.py)                       (all)
#   parity   CNN model 7, batch 32 (its own), 50 epochs: the same three paths; accuracy parity, whether
#            bfloat16 keeps accuracy, steady epoch at batch 32 (~300 s)                                 (all)
#   workers  finished trials per hour with --workers 1 and 4 on one GPU (bench/workers.py), the time left
#            split between them, and each process's GPU memory every 5 s (gpu_memory.txt)          (all)
#   archs    every architecture at batch 32 and 256, 3 epochs, 2 repeats (ARCHS=a,b and REPEATS=n choose)
#   levers   the on-device loop's steady epoch (CNN model 7, batch 32 and 256) under XLA flags for CUDA graphs and
#            with the scan unrolled (bench/xla_levers.py: a fresh process per run, cold compiles; ~4 min)
#   study    `hpsearch study cnn --trials 50 --epochs 50` as a user runs it (workers chosen for the card), wall time
#            and best; then, if EXPORT_S (default 200) seconds are left, `accuracy` without more search
#   peers    hpsearch vs KerasTuner Hyperband, same space, data and budget
#   accuracy go on with the study that `study` left (its study.db, carried back as .gpu-study/study.db) for SEARCH_S
#            seconds (default: the budget less 240 s; 0: none), then export-best --ensemble ENSEMBLE (default 3)
#            --seeds SEEDS (default 1; each member retrained with that many seeds) and score it on testY.csv;
#            ACCURACY_ARCH=resnet searches and exports the ResNet study of that storage instead of the CNN's, and
#            ACCURACY_EPOCHS=n sets the search's epochs a trial (default 50, as `study`)
# `study`, `peers` and `accuracy` run hpsearch as a user would: on a GPU with the workers it picks for the card.
# SCALE=smoke runs every part on a few hundred images for a couple of epochs: a dry run on any machine, e.g.
#   SCALE=smoke OUT=/tmp/gpu-smoke KERAS_BACKEND=jax bash bench/gpu.sh all
set -uo pipefail
part=${1:?usage: bash bench/gpu.sh all|check|speed|parity|workers|archs|levers|study|peers|accuracy}
out=${OUT:-/tmp/gpu-out}
budget=${BUDGET:-540}
started=$(date +%s)
mkdir -p "$out"
exec > >(tee -a "$out/log") 2>&1
# The dry run uses the Python it finds, unless WHEELS=1 (a Python 3.12 with only the image's packages: see README)
if [ -d .whl ] && { [ "${SCALE:-full}" != smoke ] || [ "${WHEELS:-0}" = 1 ]; }; then
  python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
if [ "${SCALE:-full}" = smoke ]; then  # sizes of the dry run
  n=300 speed_epochs=2 parity_epochs=3 repeats=1 workers_s=20 arch_list=lenet,cnn search_epochs=2 study_trials=4
  peers_epochs=2
else
  n="" speed_epochs=4 parity_epochs=50 search_epochs=50 repeats=${REPEATS:-2} workers_s=0 arch_list=${ARCHS:-cnn,resnet,lenet,vgg16,alexnet}
  study_trials=50 peers_epochs=9
fi
subset=${n:+--subset $n}
data=/tmp/gpu-data-fashion10
export out budget started data subset speed_epochs parity_epochs repeats workers_s
[ -f $data/train.csv ] || python3 -m search data prepare --source .gpu-data --out $data --labels fashion10 \
  || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1 || true
elapsed() { echo $(($(date +%s) - started)); }
left() { echo $((budget - $(elapsed))); }
# run SECONDS NAME COMMAND: one part (a function below) under a time limit, the processes it started killed
# with it (timeout signals its process group); a part that fails or overruns doesn't stop the next.
run() {
  local limit=$1 name=$2 code
  [ "$limit" -gt 30 ] || { echo "== $name: skipped, ${limit}s left"; return; }
  echo "== $name (at most ${limit}s, $(elapsed)s in)"
  timeout -k 5 "$limit" bash -o pipefail -c "$3"; code=$?
  echo "== $name: exit $code after $(elapsed)s"
}
# model7 BATCH EPOCHS REPEATS NAME: CNN model 7, plain model.fit vs the on-device loop in float32 and bfloat16.
model7() { python3 bench/trial_speed.py --data $data $subset --archs cnn:model7 --batches $1 --epochs $2 \
  --repeats $3 --paths device_loop,device_loop_bf16 | tee "$out/$4.json"; }
speed() { model7 256 $speed_epochs $repeats speed; }
parity() { model7 32 $parity_epochs 1 parity; }
workers() {  # K=1 and K=4 share what is left, less their starts
  local each=$(( workers_s > 0 ? workers_s : ($(left) - 40) / 2 ))
  # Each process's GPU memory every 5 s (bounded to 0.9/K of the card per worker): gpu_memory.txt.
  nvidia-smi --query-compute-apps=timestamp,pid,used_memory --format=csv -l 5 > "$out/gpu_memory.txt" 2>&1 &
  local sampler=$!
  python3 bench/workers.py --data $data --subset "${n:-12000}" --workers 1,4 --timeout $each --epochs 5 \
    | tee "$out/workers.json"; local code=$?; kill $sampler 2>/dev/null; return $code; }
check() { rm -f /tmp/gpu-check.db; python3 -m search study cnn --trials 2 --epochs 1 --subset "${n:-2000}" --data $data \
  --storage "sqlite:////tmp/gpu-check.db" 2>&1 | tee "$out/check.txt"
  # Whether this device computes bfloat16 right (JAX 0.11-0.12 on CPU does not: BENCHMARKS.md).
  python3 -c 'from search.runtime import use_backend; use_backend(None); from search.objective import check_precision
check_precision("bfloat16"); print("bfloat16 check: agrees with float32")' 2>&1 | tail -1 | tee -a "$out/check.txt"; }
accuracy() { local db=/tmp/gpu-study.db  # a study left on this (warm) machine, else the carried one, else new
  [ -f $db ] || [ ! -f .gpu-study/study.db ] || cp .gpu-study/study.db $db
  local search_s=${SEARCH_S:-$(( $(left) - 240 ))}  # SEARCH_S=0: only export and score
  local arch=${ACCURACY_ARCH:-cnn}
  [ "$search_s" -le 0 ] || python3 -m search study $arch --trials 1000 --epochs "${ACCURACY_EPOCHS:-$search_epochs}" \
    --data $data $subset --storage sqlite:///$db --timeout "$search_s"
  local export="python3 -m search export-best $arch --storage sqlite:///$db --data $data --out /tmp/gpu-export --force \
    --seeds ${SEEDS:-1}"
  # With fewer complete trials than ENSEMBLE, export-best refuses at once: then the winner alone
  { $export --ensemble "${ENSEMBLE:-3}" || $export; } \
    && python3 -m search score /tmp/gpu-export/submission.csv --labels $data/testY.csv | tee "$out/accuracy.txt"
  cp /tmp/gpu-export/params.json "$out/export_params.json"; }
export n search_epochs; export -f elapsed left model7 speed parity workers check accuracy
case "$part" in
  all)     run 60 check check; run 120 speed speed; run "$(($(left) - 40))" parity parity
           run "$(left)" workers workers ;;  # if parity leaves time
  check|speed|parity|workers) run "$(left)" "$part" "$part" ;;  # the time left after the install
  accuracy) run "$(left)" accuracy accuracy  # the search is saved even if the export overruns
           [ -f /tmp/gpu-study.db ] && cp /tmp/gpu-study.db "$out/study.db" ;;
  archs)   run "$(left)" archs "python3 bench/trial_speed.py --data $data $subset --archs $arch_list --epochs 3 \
             --repeats $repeats | tee $out/archs.json" ;;
  levers)  run "$(left)" levers "python3 bench/xla_levers.py --data $data $subset --epochs ${speed_epochs} \
             --repeats $repeats --variants ${VARIANTS:-default,unroll8,graph_while,graph_while_unroll8} \
             | tee $out/levers.json" ;;
  study)   rm -f /tmp/gpu-study.db
           run "$(($(left) - 20))" study "python3 -m search study cnn --trials $study_trials --epochs $search_epochs --data $data $subset \
             --storage sqlite:////tmp/gpu-study.db"
           python3 -m search trials cnn --storage sqlite:////tmp/gpu-study.db > "$out/study_trials.txt"
           cp /tmp/gpu-study.db "$out/study.db"  # for `accuracy` to go on with
           # If the study left time, export and score its winners now (`accuracy` with no more search).
           [ "$(left)" -lt "${EXPORT_S:-200}" ] || { export SEARCH_S=0; run "$(left)" accuracy accuracy; } ;;
  peers)   run "$(left)" peers "python3 bench/peers.py --data $data --subset ${n:-48000} --epochs $peers_epochs \
             --budget $(( (budget - 150) / 2 )) --seeds 1 | tee $out/peers.json" ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
echo "== done after $(elapsed)s"
