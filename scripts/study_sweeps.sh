#!/usr/bin/env bash
# The fair seesaw vs finite-norm study (docs/STUDY.md "Protocol") on a many-core machine,
# within a wall-clock deadline: the no-attack baseline (IID), the IID grid, the no-attack
# baseline on Dirichlet(0.3), the Dirichlet(0.3) grid, then the period ablation, each a
# Hydra multirun with the joblib launcher. Runs are resumable:
# a sweep cut by the deadline is completed by rerunning the same command (finished runs
# are skipped), and the full grid by `byzbench -m experiment=seesaw_vs_finite_norm
# hydra/launcher=joblib` (same run directories).
#
#   bash scripts/study_sweeps.sh [--jobs N] [--caps 0.5,2,8] [--deadline SECONDS] [--task digits|mnist1d]
#
# --task mnist1d runs the same protocol on MNIST-1D with its 1-D CNN (the *_mnist1d
# experiments: baselines and both grids; no period ablation).
#
# Seeds are the outermost sweep key, so a cut sweep holds whole seeds first.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc); CAPS=0.5,2,8; DEADLINE=36000; TASK=digits
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --caps) CAPS=$2; shift 2 ;;
    --deadline) DEADLINE=$2; shift 2 ;;
    --task) TASK=$2; shift 2 ;;
    *) echo "study_sweeps.sh: unknown option $1 (allowed: --jobs N, --caps LIST, --deadline S, --task digits|mnist1d)"; exit 2 ;;
  esac
done
END=$(( $(date +%s) + DEADLINE ))
COMMON=(hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS" threads=1 progress=false plot=false)
ATTACKS=finite_norm,seesaw,directional_deviation
sweep() {  # sweep LOGNAME EXPERIMENT [OVERRIDES...]
  local left=$(( END - $(date +%s) ))
  if (( left < 10 )); then echo "=== $1: skipped (deadline)"; return; fi
  echo "=== $1 (at most ${left}s): $(date -u +%T)"
  timeout "$left" python3 -m byzbench.run -m "experiment=$2" "${COMMON[@]}" "${@:3}" \
    > "outputs/study_$1.log" 2>&1
  echo "=== $1: exit $? at $(date -u +%T); $(find "outputs/sweeps/$2" -name summary.json 2>/dev/null | wc -l) runs done"
}
mkdir -p outputs
if [[ $TASK == mnist1d ]]; then
  sweep seesaw_baseline_mnist1d seesaw_baseline_mnist1d
  sweep seesaw_vs_finite_norm_mnist1d seesaw_vs_finite_norm_mnist1d "attack=$ATTACKS" "attack.cap=$CAPS"
  sweep seesaw_baseline_mnist1d_dirichlet seesaw_baseline_mnist1d partition=dirichlet partition.alpha=0.3
  sweep seesaw_vs_finite_norm_mnist1d_dirichlet seesaw_vs_finite_norm_mnist1d_dirichlet "attack=$ATTACKS" "attack.cap=$CAPS"
  exit 0
elif [[ $TASK != digits ]]; then
  echo "study_sweeps.sh: --task=$TASK is invalid: digits or mnist1d"; exit 2
fi
sweep seesaw_baseline seesaw_baseline
sweep seesaw_vs_finite_norm seesaw_vs_finite_norm "attack=$ATTACKS" "attack.cap=$CAPS"
sweep seesaw_baseline_dirichlet seesaw_baseline partition=dirichlet partition.alpha=0.3
sweep seesaw_vs_finite_norm_dirichlet seesaw_vs_finite_norm_dirichlet "attack=$ATTACKS" "attack.cap=$CAPS"
sweep seesaw_ablation seesaw_ablation
