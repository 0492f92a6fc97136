#!/usr/bin/env bash
# Bit-for-bit behaviour check for refactors (docs/architecture.md, "Behaviour kept"):
# a seeded elo-train, a seeded BYOL elo-train and a seeded synthetic-fitness search on a
# small demo dataset, then a digest of every weights tensor and every JSON / YAML value
# (times, pids, paths left out). Run it before and after a change and diff the digests:
#   benchmarks/behaviour_digest.sh /tmp/bd before   # ... change the code ...
#   benchmarks/behaviour_digest.sh /tmp/bd after && diff /tmp/bd/before/digest.txt /tmp/bd/after/digest.txt
set -euo pipefail
ROOT=${1:?usage: behaviour_digest.sh WORKDIR TAG}
TAG=${2:?usage: behaviour_digest.sh WORKDIR TAG}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAY_AUTH_MODE=disabled PYTHONPATH=$PWD
run() { "$PY" -c "import sys; from $1 import $2 as m; sys.exit(m(sys.argv[1:]))" "${@:3}"; }
[ -d "$ROOT/data" ] || run elo.cli data_main demo --out "$ROOT/data" --clips 48 --seed 5 --workers 1
OUT=$ROOT/$TAG
rm -rf "$OUT" && mkdir -p "$OUT"
run elo.cli train_main --data "$ROOT/data" --steps 6 --seed 3 --out "$OUT/train" --no-progress \
    train.batch_size=4 > "$OUT/train.log" 2>&1
run elo.cli train_main --data "$ROOT/data" --objective byol --steps 4 --seed 3 --out "$OUT/byol" \
    --no-progress train.batch_size=4 > "$OUT/byol.log" 2>&1
run elo.search.cli main --data "$ROOT/data" --fitness synthetic --population 6 --generations 3 \
    --workers 1 --seed 2 --out "$OUT/search" > "$OUT/search.log" 2>&1
"$PY" benchmarks/behaviour_digest.py "$OUT" > "$OUT/digest.txt"
echo "$OUT/digest.txt: $(wc -l < "$OUT/digest.txt") lines"
