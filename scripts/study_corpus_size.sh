#!/usr/bin/env bash
# Issue 10, item 3: out-of-distribution SDR of one member against corpus size and diversity.
#
#   bash scripts/study_corpus_size.sh             # MEMBER=fnn SIZES="40 150 300" MINUTES=8
#
# For every size N in SIZES it trains MEMBER (same config, same wall-clock budget MINUTES, resumable)
# on the first N training songs of
#   diverse: DATA (the default profile: several soundfonts, random effect chains, varied mixing),
#   basic:   BASIC (the 'basic' profile: one soundfont, no effects; rendered here if missing),
# and scores every epoch on the same out-of-distribution songs (OOD). Then it prints OOD SDR per
# target against N for both settings and plots the mean (RUNS/ood_vs_size.png).
# Cost: 2 x len(SIZES) runs of MINUTES each, two at a time (one thread each), plus rendering BASIC
# (about 3.4x faster than real time per core: ~45 min for 300 songs of 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MEMBER=${MEMBER:-fnn}
SIZES=${SIZES:-"40 150 300"}
MINUTES=${MINUTES:-8}
DATA=${DATA:-data/corpus}
BASIC=${BASIC:-data/corpus_basic}
OOD=${OOD:-data/ood}
RUNS=${RUNS:-runs/study_$MEMBER}
mkdir -p "$RUNS"
export OMP_NUM_THREADS=1

largest=$(echo $SIZES | tr ' ' '\n' | sort -n | tail -n 1)
if [ ! -f "$BASIC/manifest.json" ]; then
  echo "[study] rendering $BASIC ($largest songs, profile basic)" >&2
  valid=$(( largest / 10 > 8 ? largest / 10 : 8 ))
  "$PY" -m tracks.synth "$BASIC" --train $(( largest + valid )) --valid "$valid" --test 0 --seconds 30 \
    --seed 11 --profile basic --train-int16 -q
fi

one() {  # one DIVERSITY DATA_DIR SONGS
  "$PY" train.py --model "$MEMBER" --data-dir "$2" --ood-dir "$OOD" --max-train-songs "$3" \
    -o "$RUNS/$1-$3" --resume --max-minutes "$MINUTES" --threads 1 --no-progress >> "$RUNS/$1-$3.log" 2>&1
  echo "[study] $(date +%T) $1-$3 done" >&2
}

for n in $SIZES; do
  one diverse "$DATA" "$n" &
  one basic "$BASIC" "$n" &
  wait
done
"$PY" -m models.study --corpus-study "$RUNS" -o "$RUNS/ood_vs_size.png" | tee "$RUNS/ood_vs_size.md"
