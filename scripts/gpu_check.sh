#!/usr/bin/env bash
# The GPU path, checked on one GPU in under 8 minutes; everything goes to one log.
#
#   bash scripts/gpu_check.sh             # on the GPU machine (device cuda)
#   bash scripts/gpu_check.sh --dry-run   # any machine: same steps on the CPU, tiny sizes
#
# Log: $OUT/gpu_check.log when $OUT is set, else ./gpu_check.log.
# Steps (each under its own time limit, all within BUDGET=450 s; a failing step is
# reported and the next runs):
#   1. the device-parametrized tests on cuda (tests/unit/properties/test_device_paths.py:
#      every rule, pre-aggregator, attack and model against float64 CPU; tests/integration/
#      test_host.py: rounds with no synchronizing op outside byzbench.host.to_host),
#   2. scripts/bench_round.py for the MNIST MLP (784-100-10), lenet and resnet20, n = 25,
#   3. scripts/bench_models.py (vmap vs loop per model: the MEASURED_GRAD_PATHS line),
#   4. scripts/bench_aggregators.py at n = 30 / 100, d = 1e6 / 1e7,
#   5. scripts/bench_vs_byzfl.py --device cuda,
#   6. scripts/profile_round.py on the MNIST MLP workload,
#   7. scripts/bench_adaptive.py (seesaw-adaptive round / plain round).
# Missing packages (the GPU machine has torch but no hydra/omegaconf/byzfl): wheels in
# .whl/ at the repo root are installed into /tmp/site (see scripts/fetch_gpu_wheels.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
LOG="${OUT:+$OUT/gpu_check.log}"
LOG="${LOG:-$PWD/gpu_check.log}"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
export PYTHONDONTWRITEBYTECODE=1
FAILED=()
T_START=$(date +%s)
BUDGET=${BUDGET:-450}  # seconds for all steps: a step's limit is cut to what is left
step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local left=$(( T_START + BUDGET - $(date +%s) ))
  (( left < limit )) && limit=$left
  if (( limit < 5 )); then
    echo; echo "=== $name: skipped (time budget of ${BUDGET}s spent)"
    FAILED+=("$name (no time left)")
    return
  fi
  echo; echo "=== $name (limit ${limit}s): $*"
  local t0; t0=$(date +%s)
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $(( $(date +%s) - t0 ))s"
  [[ $rc -eq 0 ]] || FAILED+=("$name (exit $rc)")
}

echo "gpu_check $(date -u +%FT%TZ) dry_run=$DRY log=$LOG"
git log -1 --format='commit %H %s' 2>/dev/null || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY - <<'EOF'
import os, platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda "
      f"{torch.cuda.is_available()} {torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}, "
      f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads")
EOF

if [[ $DRY -eq 1 ]]; then
  DEV=cpu
  BUDGET=${BUDGET_DRY:-1500}
  step tests 300 $PY -m pytest -q -p no:cacheprovider tests/integration/test_host.py \
    tests/unit/properties/test_device_paths.py -k "cpu and (median or nnm or sign_flip or mlp or mean)"
  step bench_round_mlp 120 $PY scripts/bench_round.py --device $DEV --model mlp \
    --input-shape 1 28 28 --hidden 100 --n 5 --f 1 --batch 2 --repeats 1 --threads 1
  step bench_round_resnet20 120 $PY scripts/bench_round.py --device $DEV --model resnet20 \
    --input-shape 3 8 8 --n 3 --f 1 --batch 2 --repeats 1 --threads 1
  step bench_models 120 $PY scripts/bench_models.py --device $DEV --models logreg mlp \
    --n 3 --batch 2 --repeats 1 --threads 1
  step bench_aggregators 120 $PY scripts/bench_aggregators.py --devices $DEV --n 10 \
    --d 1e3 --repeats 1 --rules mean median trmean krum nnm
  if $PY -c "import byzfl" 2>/dev/null; then
    step bench_vs_byzfl 300 $PY scripts/bench_vs_byzfl.py --device $DEV --steps 4 \
      --eval-every 2 --n-train 400 --n-test 100 --threads 1
  else
    echo "=== bench_vs_byzfl: skipped (byzfl not installed: pip install -e '.[bench]')"
  fi
  step profile_round 120 $PY scripts/profile_round.py --rounds 3 --warmup 1 device=$DEV \
    dataset=mnist model=mlp 'model.hidden=[100]' agg=trmean 'preagg=[nnm]' \
    attack=sign_flip worker_momentum=0.9 dataset.max_train=2000 dataset.max_test=500
  if [[ -f scripts/bench_adaptive.py ]]; then
    step bench_adaptive 120 $PY scripts/bench_adaptive.py --device $DEV --rounds 3 --warmup 1
  fi
else
  DEV=cuda
  step tests 150 $PY -m pytest -q -p no:cacheprovider tests/unit/properties/test_device_paths.py \
    tests/integration/test_host.py -k cuda
  step bench_round_mlp 40 $PY scripts/bench_round.py --device $DEV --model mlp \
    --input-shape 1 28 28 --hidden 100 --n 25 --f 5 --repeats 20
  step bench_round_lenet 40 $PY scripts/bench_round.py --device $DEV --model lenet \
    --input-shape 1 28 28 --n 25 --f 5 --repeats 20
  step bench_round_resnet20 60 $PY scripts/bench_round.py --device $DEV --model resnet20 \
    --input-shape 3 32 32 --n 25 --f 5 --repeats 10
  step bench_models 60 $PY scripts/bench_models.py --device $DEV --repeats 5
  step bench_aggregators 110 $PY scripts/bench_aggregators.py --devices $DEV --n 30 100 \
    --d 1e6 1e7 --repeats 2
  step bench_vs_byzfl 100 $PY scripts/bench_vs_byzfl.py --device $DEV
  step profile_round 40 $PY scripts/profile_round.py --rounds 100 device=$DEV \
    dataset=mnist model=mlp 'model.hidden=[100]' agg=trmean 'preagg=[nnm]' \
    attack=sign_flip worker_momentum=0.9
  if [[ -f scripts/bench_adaptive.py ]]; then
    step bench_adaptive 60 $PY scripts/bench_adaptive.py --device $DEV --rounds 20 --blocks 1
  fi
fi

echo
echo "gpu_check done in $(( $(date +%s) - T_START ))s"
if [[ ${#FAILED[@]} -eq 0 ]]; then
  echo "all steps passed"
else
  printf 'FAILED: %s\n' "${FAILED[@]}"
  exit 1
fi
