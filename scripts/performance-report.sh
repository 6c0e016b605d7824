#!/usr/bin/env bash
# Reproduces the figures of docs/performance.md in one run:
#   1. builds normkit and normkit-dev in release,
#   2. the peer table: PyTorch (if installed) alternating with `normkit-dev bench` at the issue's
#      three shapes on 1 and 2 threads (scripts/compare-peers.py),
#   3. the throughput sweep: `normkit-dev bench --json` over rows of 768 floats for NormKit on 1
#      thread and on every core, on 1 thread at every other instruction-set level and on
#      uniform [0, 1) rows, and the naive Double reference, each with its interleaved memcpy,
#   4. the SVG plot of that sweep (scripts/plot-performance.py): $OUT/throughput.svg,
#   5. the backward table: PyTorch's native_layer_norm_backward (if installed) alternating with
#      `normkit-dev bench --backward` at [1, 1024, 768] and [8, 1024, 768] on 1 and 2 threads.
# Outputs go to docs/performance/ (override with OUT=dir). Takes about 6 minutes.
# Run it on a quiet machine: it prints the load average, and docs/performance.md quotes it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/performance}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"

echo "== build"
swift build -c release --product normkit
swift build -c release --product normkit-dev
BIN=.build/release/normkit-dev
THREADS=$(nproc)

echo "== machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
  echo "swift: $(swift --version 2>&1 | head -1)"
  echo "openblas: $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)"
  python3 -c 'import torch; print("torch:", torch.__version__, torch.backends.cpu.get_cpu_capability())' 2>/dev/null \
    || echo "torch: not installed"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

echo "== peers (alternating, $ROUNDS rounds)"
python3 scripts/compare-peers.py --rounds "$ROUNDS" --threads "1,$THREADS" \
  --normkit "$BIN" --json "$OUT/peers.json" --markdown "$OUT/peers.md"

echo "== sweep over rows"
SWEEP="$OUT/sweep.jsonl"
: > "$SWEEP"
ISAS=$(.build/release/normkit demo --batch 1 --seq 1 | sed -n 's/.*this CPU supports \([a-z0-9, ]*\);.*/\1/p' | tr -d ,)
BEST=${ISAS##* }
for rows in 1 4 16 64 256 1024 4096 8192 16384; do
  for t in 1 "$THREADS"; do
    "$BIN" bench --shape "$rows,768" --threads "$t" --json >> "$SWEEP"
  done
  # Every other instruction-set level on one thread, and large-mean rows at the best one.
  for isa in $ISAS; do
    [ "$isa" = "$BEST" ] || "$BIN" bench --shape "$rows,768" --threads 1 --isa "$isa" --json >> "$SWEEP"
  done
  "$BIN" bench --shape "$rows,768" --threads 1 --data rand --json >> "$SWEEP"
  # The naive reference is ~50x slower: fewer iterations, and only up to 4096 rows.
  if [ "$rows" -le 4096 ]; then
    "$BIN" bench --workload reference --shape "$rows,768" --threads 1 --iterations 15 --json >> "$SWEEP"
  fi
  echo "rows $rows done, load $(cut -d' ' -f1 /proc/loadavg)"
done

echo "== backward (alternating, $ROUNDS rounds)"
python3 scripts/compare-peers.py --backward --rounds "$ROUNDS" --threads "1,$THREADS" \
  --shapes 1,1024,768 8,1024,768 \
  --normkit "$BIN" --json "$OUT/peers-backward.json" --markdown "$OUT/peers-backward.md"

echo "== plot"
python3 scripts/plot-performance.py "$SWEEP" "$OUT/throughput.svg" \
  --title "LayerNorm forward, dim 768: GB/s against rows ($(nproc) cores, Zen 4)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "== done: $OUT/peers.md, $OUT/peers-backward.md, $SWEEP, $OUT/throughput.svg"
