#!/usr/bin/env bash
# One GPU session's work, prepared to need nothing it cannot bring along.
#
#   bash tools/gpu_run.sh [SECONDS]      (on the GPU machine, from the project root)
#
# Everything ends within SECONDS (default 560) of the start:
#   1. the batched inference throughput at 1024x1024 (whole tensor path) and the training
#      throughput of PRESET at 256 and 512 px with the data pipeline included (cutouts placed
#      on the device), for docs/benchmarks.md;
#   2. the default model (PRESET, default: lite, the bundled network's recipe), continued from
#      INIT (default: the bundled weights; PRESET=default trains the kirinet recipe), and the
#      paper preset from scratch, trained side by side on the same GPU for the same minutes
#      (the rest of the budget), the default model with most of the CPU cores (PLACEMENT:
#      where its cutouts are placed, device by default; SETS: more --set overrides for it);
#      SETS_B="..." trains a second run beside it with those overrides added, an equal-budget
#      comparison of one change (B_WORKERS workers; b-best.pt and b-last.pt come back);
#      PHASE2=S keeps the last S seconds for a second phase of the default model from its best
#      weights with SETS2 added (default: data.bg_scene=0, no scene backgrounds);
#      phase2-best.pt and phase2-last.pt come back;
#   3. weights-only copies of the results and the logs, small enough to come back.
# Needs: PyTorch, numpy and Pillow on the machine (no install, no network) and the compact
# data copy in .data/compact (python tools/compact_data.py ../shared/data .data/compact).
# Writes to $OUT (or gpu-out/) at most 10 files: log.txt, logs.tgz, default-best.pt (b-best.pt,
# phase2-best.pt), default-last.pt (b-last.pt, phase2-last.pt), paper.pt (fp16). Evaluate them
# on the full-size val/ afterwards (see docs/gpu-training.md) and bundle the default model only
# if it scores better.
#
# A CPU dry run (a minute or two):
#   OUT=/tmp/dry BATCH=8 WORKERS=1 PAPER_WORKERS=1 SPEED_BATCH=8 SPEED_STEPS=10 THROUGHPUT=1 \
#       bash tools/gpu_run.sh 150
# and of the pretrained recipe's training alone (its set-up takes about a minute on a CPU):
#   OUT=/tmp/dry BATCH=8 WORKERS=1 PAPER_WORKERS=0 BENCH=0 PRESET=lite INIT=default \
#       SIZES=[256] WORK=256 SETS="optim.ema=0.998 optim.encoder_lr_ratio=0.1" VAL_EVERY=20 bash tools/gpu_run.sh 200
# (the second phase too: VAL_EVERY=10 PHASE2=150 and a budget of 420).
set -uo pipefail
T0=$(date +%s)
BUDGET=${1:-560}
OUT=${OUT:-gpu-out}
BATCH=${BATCH:-64}
WORKERS=${WORKERS:-11}
PAPER_WORKERS=${PAPER_WORKERS:-3}
SPEED_BATCH=${SPEED_BATCH:-256}
SPEED_STEPS=${SPEED_STEPS:-180}
THROUGHPUT=${THROUGHPUT-1 8 32 64}      # empty: no inference figures
BENCH=${BENCH:-1}                 # 0: skip the throughput measurements
SIZES=${SIZES:-[384,448,512]}     # training canvases of the default model
WORK=${WORK:-512}                 # its working size
LR=${LR:-1e-3}
PRESET=${PRESET:-lite}            # the recipe: lite (pretrained kirilite, the bundled network) or default (kirinet)
INIT=${INIT:-default}             # weights to continue: a bundled model's name or a checkpoint
PLACEMENT=${PLACEMENT:-device}    # where cutouts are placed: device (batched warp) or cpu (workers)
SETS=${SETS:-}                    # more overrides for that run, e.g. SETS="data.p_lineart=0.1 data.p_drawn=0.15"
SETS_B=${SETS_B:-}                # a second run beside it with these overrides added (b-best.pt, b-last.pt)
B_WORKERS=${B_WORKERS:-$WORKERS}  # its DataLoader workers
VAL_EVERY=${VAL_EVERY:-250}       # its validations (best.pt is the best of them): the CPU runs peaked early
PHASE2=${PHASE2:-0}               # seconds of a second phase from the default run's best weights (0: none)
SETS2=${SETS2:-data.bg_scene=0}   # that phase's overrides, added to SETS
DATA=.data/compact
PY=${PY:-python3}
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT/paper"              # each run of the default model makes its own folder
LOG="$OUT/log.txt"
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$LOG"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
$PY -c "import torch, numpy, PIL; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'numpy', numpy.__version__, 'pillow', PIL.__version__); import os; print('cpus', os.cpu_count())" 2>&1 | tee -a "$LOG"

if [ "$BENCH" = 1 ]; then
if [ -n "$THROUGHPUT" ]; then   # THROUGHPUT= (empty) leaves the inference figures out
    say "inference throughput"
    timeout 60 $PY benchmarks/gpu_throughput.py --batches $THROUGHPUT --seconds 4 2>&1 | tee -a "$LOG"
fi
for SIZE in 256 512; do
    say "training throughput at $SIZE"
    timeout 75 $PY benchmarks/train_speed.py --data "$DATA" --preset "$PRESET" --size $SIZE \
        --batch $([ $SIZE = 256 ] && echo "$SPEED_BATCH" || echo "$BATCH") --steps "$SPEED_STEPS" \
        --workers $(( WORKERS + PAPER_WORKERS + ${SETS_B:+B_WORKERS} + 0 )) --placement "$PLACEMENT" 2>&1 | tee -a "$LOG"
done
say "composites per second"
timeout 25 $PY benchmarks/composite_speed.py --data "$DATA" --sizes 256 512 --samples 64 2>&1 | tee -a "$LOG"
fi

# Training gets what is left, less a margin for the last checkpoints and the copies.
SECS=$(( $(left) - 45 ))
minutes() { $PY -c "print(round(max(0.2, $1 / 60 - 0.4), 2))"; }   # 0.4 min: start-up before the clock
MIN=$(minutes $SECS)
SECS1=$(( SECS - PHASE2 ))            # the default model's first phase
MIN1=$(minutes $SECS1)
say "training for $MIN minutes"
[ "$PHASE2" -gt 0 ] && say "the default model: $MIN1 minutes, then $(minutes "$PHASE2") from its best weights with $SETS2"
# A run of the default model: its output folder, its workers, the weights it starts from, its
# seconds, then its --set overrides.
train_default() {
    local dir=$1 workers=$2 init=$3 secs=$4; shift 4
    mkdir -p "$OUT/$dir"
    timeout -s TERM -k 20 $(( secs + 30 )) $PY -m kirinuki train --preset "$PRESET" --data "$DATA" --val "$DATA/val/anime" \
        --out "$OUT/$dir" --init-from "$init" --minutes "$(minutes "$secs")" --batch "$BATCH" --workers "$workers" -q \
        --set "sizes=$SIZES" --set model.work_size=$WORK --set optim.lr=$LR \
        --set optim.warmup_steps=50 --set optim.decay_over_minutes=true --set optim.min_lr_ratio=0.05 \
        --set "data.placement=\"$PLACEMENT\"" $(for kv in "$@"; do printf -- '--set %s ' "$kv"; done) \
        --set val_every=$VAL_EVERY --set ckpt_every=250 --set log_every=50 > "$OUT/$dir/stderr.txt" 2>&1
}
train_default default "$WORKERS" "$INIT" "$SECS1" $SETS &
PID_DEFAULT=$!
if [ -n "$SETS_B" ]; then     # the same recipe with one change, side by side, for the same minutes
    train_default b "$B_WORKERS" "$INIT" "$SECS1" $SETS $SETS_B &
    PID_B=$!
fi
if [ "$PAPER_WORKERS" -gt 0 ]; then
    timeout -s TERM -k 20 $(( SECS + 30 )) $PY -m kirinuki train --preset paper --data "$DATA" --val "$DATA/val/anime" \
        --out "$OUT/paper" --minutes "$MIN" --workers "$PAPER_WORKERS" -q \
        --set val_every=2000 --set ckpt_every=1000 --set log_every=200 > "$OUT/paper/stderr.txt" 2>&1 &
    PID_PAPER=$!
fi
wait $PID_DEFAULT; say "default run ended ($?)"
if [ -n "$SETS_B" ]; then wait $PID_B; say "run b ended ($?)"; fi
if [ "$PHASE2" -gt 0 ]; then         # from the first phase's best weights, for the seconds left to it
    SECS2=$(( $(left) - 45 ))
    if [ ! -f "$OUT/default/best.pt" ]; then
        say "second phase skipped: the first left no best.pt"
    elif [ "$SECS2" -lt 30 ]; then
        say "second phase skipped: $SECS2 s left to it"
    else
        train_default phase2 "$WORKERS" "$OUT/default/best.pt" "$SECS2" $SETS $SETS2
        say "second phase ended ($?)"
    fi
fi
if [ "$PAPER_WORKERS" -gt 0 ]; then wait $PID_PAPER; say "paper run ended ($?)"; fi
cat "$OUT/default/stderr.txt" "$OUT/b/stderr.txt" "$OUT/phase2/stderr.txt" "$OUT/paper/stderr.txt" >> "$LOG" 2>/dev/null

# Weights only (no optimiser state, no raw weights beside an average); the paper model in fp16 so that it fits the 16 MB per file.
$PY - "$OUT" <<'PY' 2>&1 | tee -a "$LOG"
import sys
from pathlib import Path
from kirinuki.checkpoint import half_precision, load_checkpoint, save_checkpoint, without_training_state
out = Path(sys.argv[1])
def slim(src, dst, half=False):
    if not src.is_file():
        print("missing", src); return
    s = without_training_state(load_checkpoint(src))
    save_checkpoint(half_precision(s) if half else s, dst)
    print(dst.name, "step", s["step"], "metrics", {k: round(v, 4) for k, v in s.get("metrics", {}).items()
                                                  if k in ("psnr", "iou")})
slim(out / "default/best.pt", out / "default-best.pt")
slim(out / "default/last.pt", out / "default-last.pt")
if (out / "b").is_dir():
    slim(out / "b/best.pt", out / "b-best.pt")
    slim(out / "b/last.pt", out / "b-last.pt")
if (out / "phase2").is_dir():
    slim(out / "phase2/best.pt", out / "phase2-best.pt")
    slim(out / "phase2/last.pt", out / "phase2-last.pt")
paper = out / "paper/best.pt" if (out / "paper/best.pt").is_file() else out / "paper/last.pt"
slim(paper, out / "paper.pt", half=True)
PY
tar czf "$OUT/logs.tgz" -C "$OUT" --ignore-failed-read default/train_log.csv default/val_log.csv \
    b/train_log.csv b/val_log.csv phase2/train_log.csv phase2/val_log.csv paper/train_log.csv paper/val_log.csv 2>/dev/null
rm -rf "$OUT/default" "$OUT/b" "$OUT/phase2" "$OUT/paper"
say "done"
ls -la "$OUT" | tee -a "$LOG"
