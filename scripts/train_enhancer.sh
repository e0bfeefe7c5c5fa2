#!/usr/bin/env bash
# Train and ship the enhancer (docs/enhancer.md), after the members are trained and the ensemble is
# tuned (scripts/train_members.sh, scripts/figures.sh): the enhancer learns the ensemble's artifacts.
#
#   bash scripts/train_enhancer.sh       # DATA=data/corpus SONGS=60 BASE_STEPS=900 ADAPTER_STEPS=150
#
# 1. the default ensemble's estimates (enhancer off) of the first SONGS training songs and of the
#    validation songs (python -m enhancer.pairs; about 11 s per 30 s song on one busy core);
# 2. the base on pairs of all four targets (3-4 s per step of 4 x 3 s excerpts on one thread);
# 3. one LoRA adapter per target on the frozen base;
# 4. shipped into enhancer/weights/ with the manifest (python -m enhancer.manifest).
# Every step resumes where it stopped (--resume; estimates already written are skipped). Then run
# scripts/figures.sh again: its tuning step enables the enhancer where it raises validation SDR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/corpus}
EST=${EST:-data/enhancer/est}
RUNS=${RUNS:-runs/enhancer}
SONGS=${SONGS:-60}
BASE_STEPS=${BASE_STEPS:-900}
ADAPTER_STEPS=${ADAPTER_STEPS:-150}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS"
common=(--data-dir "$DATA" --estimates "$EST" --train-songs "$SONGS" --batch-size 4 --seconds 3 --lr 1e-3
        --seed 42 --valid-songs 8 --threads "$OMP_NUM_THREADS" --resume)

"$PY" -m enhancer.pairs --data-dir "$DATA" --split train --first "$SONGS" -o "$EST"
"$PY" -m enhancer.pairs --data-dir "$DATA" --split valid -o "$EST"
"$PY" -m enhancer.train "${common[@]}" -o "$RUNS/base" --steps "$BASE_STEPS" --valid-every 150 \
  > "$RUNS/base.log" 2>&1
"$PY" -m enhancer.manifest "$RUNS/base/base.pth" base
for t in vocals other bass drums; do
  "$PY" -m enhancer.train "${common[@]}" --base "$RUNS/base/base.pth" --adapter "$t" --targets "$t" \
    -o "$RUNS/$t" --steps "$ADAPTER_STEPS" --valid-every 50 > "$RUNS/$t.log" 2>&1
  "$PY" -m enhancer.manifest "$RUNS/$t/$t.pth" "$t"
done
echo "[train_enhancer] shipped enhancer/weights/: base + adapters ($(date +%T))"
