#!/usr/bin/env bash
# Train every shipped member, resumably, on two CPU cores, then ship the weights.
#
#   bash scripts/train_members.sh                 # DATA=data/corpus OOD=data/ood RUNS=runs
#   DATA=... OOD=... RUNS=... bash scripts/train_members.sh
#
# Two lanes run side by side with one torch thread each (two small models on one core each train
# faster than one after the other on two). Every member stops at the wall-clock budget of its config
# (training.max_minutes, validation included) or earlier by early stopping:
#   lane A: umx 202 + demucs 24 + fnn without augmentation (ablation) 10 + umx-8192 160 = 396 min
#   lane B: fnn 85 + unet-spec 130 + convtasnet 22 + unet-wave 20 + umx-4096 170      = 427 min
# (umx-4096, umx-8192: Open-Unmix at other STFT sizes, configs/train/umx-{4096,8192}.yaml, seeds 1, 2.)
# Logs: RUNS/<member>.log. Killed? Run the script again: every run continues from its last epoch
# (--resume) and finished runs stop at once. Each finished member is shipped to
# models/weights/<member>.pth (float16) with its manifest entry (python -m models.manifest).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/corpus}
OOD=${OOD:-data/ood}
RUNS=${RUNS:-runs}
mkdir -p "$RUNS"
export OMP_NUM_THREADS=1

ood_args=()
[ -d "$OOD" ] && ood_args=(--ood-dir "$OOD") || echo "[train_members] no $OOD: training without OOD scores" >&2

train() {  # train NAME RUN [extra train.py flags...]: train (or resume) RUNS/RUN
  local name=$1 run=$2; shift 2
  echo "[train_members] $(date +%T) $run: start" >&2
  "$PY" train.py --model "$name" --data-dir "$DATA" "${ood_args[@]}" -o "$RUNS/$run" --resume \
    --threads 1 --no-progress "$@" >> "$RUNS/$run.log" 2>&1
  echo "[train_members] $(date +%T) $run: done ($(tail -n 1 "$RUNS/$run.log"))" >&2
}

ship() {
  "$PY" -m models.manifest "$RUNS/$1/best.pth" "$1" >> "$RUNS/$1.log" 2>&1
}

member() {  # member NAME [RUN [train.py flags...]]: train and ship as RUN; a failure is reported
  local name=$1 run=${2:-$1}; shift $(( $# > 1 ? 2 : 1 ))
  { train "$name" "$run" "$@" && ship "$run"; } || echo "[train_members] $run FAILED: see $RUNS/$run.log" >&2
}

lane_a() {
  member umx
  member demucs
  # ablation, not shipped: compared with fnn's first 10 minutes (models.study --ablation)
  train fnn fnn-noaug --no-augment --max-minutes 10 || echo "[train_members] fnn-noaug FAILED" >&2
  member umx umx-8192 --config configs/train/umx-8192.yaml --seed 2
}

lane_b() {
  member fnn
  member unet-spec
  member convtasnet
  member unet-wave
  member umx umx-4096 --config configs/train/umx-4096.yaml --seed 1
}

start=$(date +%s)
lane_a & pid_a=$!
lane_b & pid_b=$!
status=0
wait $pid_a || status=1
wait $pid_b || status=1
echo "[train_members] all lanes done in $(( ($(date +%s) - start) / 60 )) min (status $status)" >&2

# Summary: best validation / OOD SDR of every run (ablation: rows fnn and fnn-noaug).
"$PY" -m models.study "$RUNS"/{demucs,umx,umx-4096,umx-8192,fnn,fnn-noaug,convtasnet,unet-wave,unet-spec} \
  --json "$RUNS/summary.json" | tee "$RUNS/summary.md"
du -ch models/weights/*.pth | tail -n 1
exit $status
